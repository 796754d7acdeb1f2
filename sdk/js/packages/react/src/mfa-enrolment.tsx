//! `<MfaEnrolment>`: the server requires two-step verification and the user has none yet. It
//! begins an authenticator-app enrolment with the sign-in's MFA token, shows the QR code (as an
//! image: SVG from the server never becomes live markup) and the secret to type, takes a first
//! code, then shows the backup codes once before finishing the sign-in.

import type { MfaRequired, User } from '@gatehouse/js';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useGatehouse } from './context.js';
import { Field, FormError } from './field.js';
import { fieldMessages, messageFor } from './messages.js';

export interface MfaEnrolmentProps {
  challenge: MfaRequired;
  onSignedIn?: (user: User) => void;
}

export function MfaEnrolment({ challenge, onSignedIn }: MfaEnrolmentProps) {
  const client = useGatehouse();
  const [enrolment, setEnrolment] = useState<{ secret: string; qr: string } | null>(null);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [done, setDone] = useState<{ user: User; backupCodes: string[]; complete: () => unknown } | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const codesHeading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    let live = true;
    client
      .beginRequiredTotpEnrolment(challenge.mfaToken)
      .then((answer) => {
        if (!live) return;
        setEnrolment({ secret: answer.secret, qr: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.qr_svg)}` });
        heading.current?.focus();
      })
      .catch((caught: unknown) => live && setError(messageFor(caught)));
    return () => {
      live = false;
    };
  }, [client, challenge.mfaToken]);

  useEffect(() => {
    if (done) codesHeading.current?.focus();
  }, [done]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      // The session is held until the codes were seen: storing it would swap this form for
      // the signed-in app at once.
      const result = await client.confirmRequiredTotpEnrolment(challenge.mfaToken, code.trim(), { holdSession: true });
      setDone({ user: result.user, backupCodes: result.backupCodes, complete: result.complete });
    } catch (caught) {
      setError(messageFor(caught));
      setFields(fieldMessages(caught));
    } finally {
      setBusy(false);
    }
  }

  if (done) {
    return (
      <section className="gh-card" aria-labelledby="gh-backup-title">
        <h2 className="gh-title" id="gh-backup-title" tabIndex={-1} ref={codesHeading}>
          Save your backup codes
        </h2>
        <p>Each code signs you in once if you lose your authenticator. They are shown only now.</p>
        <ul className="gh-codes" aria-label="Backup codes">
          {done.backupCodes.map((backup) => (
            <li key={backup}>
              <code>{backup}</code>
            </li>
          ))}
        </ul>
        <button className="gh-button gh-button-primary" type="button" onClick={() => {
            done.complete();
            onSignedIn?.(done.user);
          }}>
          Continue
        </button>
      </section>
    );
  }

  return (
    <section className="gh-card" aria-labelledby="gh-enrol-title">
      <h2 className="gh-title" id="gh-enrol-title" tabIndex={-1} ref={heading}>
        Set up two-step verification
      </h2>
      {enrolment ? (
        <form className="gh-form" onSubmit={submit} noValidate>
          <p>Scan the QR code with your authenticator app, or type the key below, then enter the code it shows.</p>
          <img className="gh-qr" src={enrolment.qr} alt="QR code for your authenticator app" width={192} height={192} />
          <p className="gh-secret">
            Key: <code data-testid="gh-totp-secret">{enrolment.secret}</code>
          </p>
          <Field
            label="Verification code"
            name="code"
            inputMode="numeric"
            autoComplete="one-time-code"
            required
            value={code}
            onChange={(event) => setCode(event.target.value)}
            error={fields.code}
          />
          <FormError message={error} />
          <button className="gh-button gh-button-primary" type="submit" disabled={busy} aria-busy={busy}>
            Verify and continue
          </button>
        </form>
      ) : (
        <FormError message={error} />
      )}
    </section>
  );
}
