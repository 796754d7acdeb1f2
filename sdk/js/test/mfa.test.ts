// The MFA step: a user with an authenticator app signs in with the password, gets the typed
// `mfa_required` result, and completes it with a TOTP code the test computes (RFC 6238).
import { Gatehouse, GatehouseError } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';
import { base32Decode, currentStep, totpAt } from './support/totp.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

/** An account with TOTP enrolled; answers its secret and the step its confirmation used. */
async function userWithTotp(address: string): Promise<{ secret: Buffer; usedStep: number }> {
  const owner = new Gatehouse({ url: server.url });
  await owner.signUp({ email: address, password: PASSWORD });
  const enrolment = await owner.beginTotpEnrolment();
  expect(enrolment.otpauth_uri).toMatch(/^otpauth:\/\/totp\//);
  const secret = base32Decode(enrolment.secret);
  const usedStep = currentStep();
  const { backup_codes } = await owner.confirmTotpEnrolment(totpAt(secret, usedStep));
  expect(backup_codes.length).toBeGreaterThan(0);
  return { secret, usedStep };
}

test('signIn answers mfa_required; verifyMfa with a TOTP code signs in', async () => {
  const address = email('second-factor');
  const { secret, usedStep } = await userWithTotp(address);
  const client = new Gatehouse({ url: server.url });

  const first = await client.signIn({ email: address, password: PASSWORD });
  expect(first.status).toBe('mfa_required');
  if (first.status !== 'mfa_required') return;
  expect(first.methods).toContain('totp');
  expect(first.mfaToken).toMatch(/^gtm_/);
  expect(first.expiresIn).toBeGreaterThan(0);
  expect(first.enrolmentRequired).toBe(false);
  expect(client.isSignedIn).toBe(false);

  // The confirmation spent `usedStep`'s code (a replay would be refused); the next step's is
  // within the server's ±1 step window.
  const done = await client.verifyMfa({ mfaToken: first.mfaToken, method: 'totp', code: totpAt(secret, usedStep + 1) });
  expect(done.status).toBe('signed_in');
  expect(done.user.email).toBe(address);
  expect(client.claims()?.amr).toEqual(expect.arrayContaining(['pwd', 'mfa']));
  expect((await client.getUser())?.email).toBe(address);
});

test('a wrong code is invalid_mfa_code and leaves the client signed out', async () => {
  const address = email('wrong-code');
  const { secret, usedStep } = await userWithTotp(address);
  const client = new Gatehouse({ url: server.url });
  const first = await client.signIn({ email: address, password: PASSWORD });
  if (first.status !== 'mfa_required') throw new Error('expected the second step');
  const wrong = String((Number(totpAt(secret, usedStep + 1)) + 1) % 1_000_000).padStart(6, '0');

  const error = await client
    .verifyMfa({ mfaToken: first.mfaToken, method: 'totp', code: wrong })
    .catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(GatehouseError);
  expect((error as GatehouseError).code).toBe('invalid_mfa_code');
  expect((error as GatehouseError).status).toBe(400);
  expect(client.isSignedIn).toBe(false);
});
