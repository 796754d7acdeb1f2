//! `<SignIn>`: email and password, then, when the account has a second factor, the code step
//! (authenticator app or backup code, or a code sent by email); a passkey button where the
//! browser supports passkeys. Focus moves to the first field of each step.

import { passkeysSupported, type MfaMethod, type MfaRequired, type SignInResult, type User } from '@gatehouse/js';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useGatehouse } from './context.js';
import { Field, FormError } from './field.js';
import { MfaEnrolment } from './mfa-enrolment.js';
import { fieldMessages, messageFor } from './messages.js';

export interface SignInProps {
  /** Called once the user is signed in. */
  onSignedIn?: (user: User) => void;
  /** Offer "Sign in with a passkey" (default: when the browser supports passkeys). */
  passkeys?: boolean;
  /** Where the "create an account" link goes, if anywhere. */
  signUpUrl?: string;
  title?: string;
}

const METHOD_LABELS: Record<MfaMethod, string> = {
  totp: 'Authenticator app',
  backup_code: 'Backup code',
  email: 'Code by email',
  sms: 'Code by text message',
};

export function SignIn({ onSignedIn, passkeys, signUpUrl, title = 'Sign in' }: SignInProps) {
  const client = useGatehouse();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [challenge, setChallenge] = useState<MfaRequired | null>(null);
  const [method, setMethod] = useState<MfaMethod>('totp');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [offerPasskeys, setOfferPasskeys] = useState(false);
  const codeInput = useRef<HTMLInputElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  useEffect(() => setOfferPasskeys(passkeys ?? passkeysSupported()), [passkeys]);
  useEffect(() => {
    if (challenge) codeInput.current?.focus();
  }, [challenge, method]);

  function finish(result: SignInResult) {
    if (result.status === 'mfa_required') {
      setChallenge(result);
      const first = result.methods.find((candidate) => candidate !== 'backup_code') ?? result.methods[0] ?? 'totp';
      setMethod(first);
      return;
    }
    onSignedIn?.(result.user);
  }

  async function attempt(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    setFields({});
    try {
      await action();
    } catch (caught) {
      setError(messageFor(caught));
      setFields(fieldMessages(caught));
    } finally {
      setBusy(false);
    }
  }

  function submitPassword(event: FormEvent) {
    event.preventDefault();
    void attempt(async () => finish(await client.signIn({ email, password })));
  }

  function submitCode(event: FormEvent) {
    event.preventDefault();
    if (!challenge) return;
    void attempt(async () => {
      const result = await client.verifyMfa({ mfaToken: challenge.mfaToken, method, code: code.trim() });
      onSignedIn?.(result.user);
    });
  }

  function chooseMethod(next: MfaMethod) {
    setMethod(next);
    setCode('');
    if (challenge && (next === 'email' || next === 'sms')) {
      void attempt(() => client.sendMfaCode(challenge.mfaToken, next));
    }
  }

  if (challenge?.enrolmentRequired) {
    return <MfaEnrolment challenge={challenge} {...(onSignedIn ? { onSignedIn } : {})} />;
  }

  if (challenge) {
    return (
      <section className="gh-card" aria-labelledby="gh-sign-in-title">
        <h2 className="gh-title" id="gh-sign-in-title" ref={heading}>
          Two-step verification
        </h2>
        <form className="gh-form" onSubmit={submitCode} noValidate>
          {challenge.methods.length > 1 ? (
            <fieldset className="gh-fieldset">
              <legend className="gh-label">Verify with</legend>
              {challenge.methods.map((candidate) => (
                <label key={candidate} className="gh-choice">
                  <input
                    type="radio"
                    name="gh-mfa-method"
                    value={candidate}
                    checked={method === candidate}
                    onChange={() => chooseMethod(candidate)}
                  />
                  {METHOD_LABELS[candidate] ?? candidate}
                </label>
              ))}
            </fieldset>
          ) : null}
          <Field
            label={method === 'backup_code' ? 'Backup code' : 'Verification code'}
            hint={method === 'totp' ? 'The 6-digit code from your authenticator app.' : undefined}
            name="code"
            inputMode={method === 'backup_code' ? 'text' : 'numeric'}
            autoComplete="one-time-code"
            required
            value={code}
            onChange={(event) => setCode(event.target.value)}
            inputRef={codeInput}
            error={fields.code}
          />
          <FormError message={error} />
          <button className="gh-button gh-button-primary" type="submit" disabled={busy} aria-busy={busy}>
            Verify
          </button>
          <button
            className="gh-button gh-button-link"
            type="button"
            onClick={() => {
              setChallenge(null);
              setCode('');
              setError(null);
            }}
          >
            Start again
          </button>
        </form>
      </section>
    );
  }

  return (
    <section className="gh-card" aria-labelledby="gh-sign-in-title">
      <h2 className="gh-title" id="gh-sign-in-title">
        {title}
      </h2>
      <form className="gh-form" onSubmit={submitPassword} noValidate>
        <Field
          label="Email address"
          name="email"
          type="email"
          autoComplete="username webauthn"
          required
          value={email}
          onChange={(event) => setEmail(event.target.value)}
          error={fields.email}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          error={fields.password}
        />
        <FormError message={error} />
        <button className="gh-button gh-button-primary" type="submit" disabled={busy} aria-busy={busy}>
          Sign in
        </button>
        {offerPasskeys ? (
          <button
            className="gh-button"
            type="button"
            disabled={busy}
            onClick={() => void attempt(async () => finish(await client.signInWithPasskey()))}
          >
            Sign in with a passkey
          </button>
        ) : null}
      </form>
      {signUpUrl ? (
        <p className="gh-footer">
          No account yet? <a href={signUpUrl}>Create an account</a>
        </p>
      ) : null}
    </section>
  );
}
