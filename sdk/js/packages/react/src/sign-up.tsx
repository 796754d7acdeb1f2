//! `<SignUp>`: email, password and an optional name. When the server requires email
//! verification the form gives way to "check your email".

import type { MfaRequired, User } from '@gatehouse/js';
import { useRef, useState, type FormEvent } from 'react';
import { useGatehouse } from './context.js';
import { Field, FormError } from './field.js';
import { MfaEnrolment } from './mfa-enrolment.js';
import { fieldMessages, messageFor } from './messages.js';

export interface SignUpProps {
  onSignedUp?: (user: User) => void;
  signInUrl?: string;
  title?: string;
}

export function SignUp({ onSignedUp, signInUrl, title = 'Create an account' }: SignUpProps) {
  const client = useGatehouse();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [firstName, setFirstName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [checkEmail, setCheckEmail] = useState(false);
  const [enrolment, setEnrolment] = useState<MfaRequired | null>(null);
  const notice = useRef<HTMLHeadingElement>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      const result = await client.signUp({
        email,
        password,
        ...(firstName.trim() ? { first_name: firstName.trim() } : {}),
      });
      if (result.status === 'verification_required') {
        setCheckEmail(true);
        queueMicrotask(() => notice.current?.focus());
      } else if (result.status === 'sign_in_required') {
        // The server requires MFA: sign in, which leads to the enrolment.
        const signedIn = await client.signIn({ email, password });
        if (signedIn.status === 'mfa_required') setEnrolment(signedIn);
        else onSignedUp?.(signedIn.user);
      } else {
        onSignedUp?.(result.user);
      }
    } catch (caught) {
      setError(messageFor(caught));
      setFields(fieldMessages(caught));
    } finally {
      setBusy(false);
    }
  }

  if (enrolment) {
    return <MfaEnrolment challenge={enrolment} {...(onSignedUp ? { onSignedIn: onSignedUp } : {})} />;
  }

  if (checkEmail) {
    return (
      <section className="gh-card" aria-labelledby="gh-sign-up-title">
        <h2 className="gh-title" id="gh-sign-up-title" tabIndex={-1} ref={notice}>
          Check your email
        </h2>
        <p>We sent a link to {email}. Open it to confirm your address, then sign in.</p>
      </section>
    );
  }

  return (
    <section className="gh-card" aria-labelledby="gh-sign-up-title">
      <h2 className="gh-title" id="gh-sign-up-title">
        {title}
      </h2>
      <form className="gh-form" onSubmit={submit} noValidate>
        <Field
          label="Email address"
          name="email"
          type="email"
          autoComplete="email"
          required
          value={email}
          onChange={(event) => setEmail(event.target.value)}
          error={fields.email}
        />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          error={fields.password}
        />
        <Field
          label="First name (optional)"
          name="first_name"
          autoComplete="given-name"
          value={firstName}
          onChange={(event) => setFirstName(event.target.value)}
          error={fields.first_name}
        />
        <FormError message={error} />
        <button className="gh-button gh-button-primary" type="submit" disabled={busy} aria-busy={busy}>
          Create the account
        </button>
      </form>
      {signInUrl ? (
        <p className="gh-footer">
          Already have an account? <a href={signInUrl}>Sign in</a>
        </p>
      ) : null}
    </section>
  );
}
