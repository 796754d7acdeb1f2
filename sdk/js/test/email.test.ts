// The flows whose secret travels by email, with a real SMTP sink: sign-up when verification is
// required (the same 202 answer for every address), the verification link, and the password
// reset (which ends every session).
import { Gatehouse, GatehouseError } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, startSink, type LiveServer, type Sink } from './support/server.js';

let sink: Sink;
let server: LiveServer;

beforeAll(async () => {
  sink = await startSink();
  server = await startServer({ smtp: sink, settings: { GATEHOUSE_REQUIRE_EMAIL_VERIFICATION: 'true' } });
});

afterAll(async () => {
  await server?.stop();
  await sink?.stop();
});

function tokenOf(link: string | undefined): string {
  expect(link).toBeTruthy();
  const token = new URL(link!, server.url).searchParams.get('token');
  expect(token).toBeTruthy();
  return token!;
}

test('sign-up answers verification_required; the emailed token verifies; then sign-in works', async () => {
  const address = email('verify');
  const client = new Gatehouse({ url: server.url });
  expect(await client.signUp({ email: address, password: PASSWORD })).toEqual({ status: 'verification_required' });
  expect(client.isSignedIn).toBe(false);
  // A registered address gets the very same answer.
  expect(await client.signUp({ email: address, password: PASSWORD })).toEqual({ status: 'verification_required' });

  const mail = await sink.waitFor(address, 'Confirm your email');
  await client.verifyEmail(tokenOf(mail.linkFor('/verify-email')));
  const result = await client.signIn({ email: address, password: PASSWORD });
  expect(result.status).toBe('signed_in');
  expect((await client.getUser())?.email_verified).toBe(true);
});

test('forgotPassword and resetPassword: the new password signs in, the old session is over', async () => {
  const address = email('reset');
  const owner = new Gatehouse({ url: server.url });
  await owner.signUp({ email: address, password: PASSWORD });
  await owner.verifyEmail(tokenOf((await sink.waitFor(address, 'Confirm your email')).linkFor('/verify-email')));
  await owner.signIn({ email: address, password: PASSWORD });

  await owner.forgotPassword(address);
  await owner.forgotPassword(email('nobody')); // the same answer for an unknown address
  const mail = await sink.waitFor(address, 'password');
  const link = mail.linkFor('/reset-password');
  const replacement = 'Brand-new-harbour-lantern-93!';
  await new Gatehouse({ url: server.url }).resetPassword(tokenOf(link), replacement);

  expect(await owner.getUser()).toBeNull(); // signed out by the reset
  expect(owner.isSignedIn).toBe(false);
  const again = new Gatehouse({ url: server.url });
  expect((await again.signIn({ email: address, password: replacement })).status).toBe('signed_in');
  const old = await again.signIn({ email: address, password: PASSWORD }).catch((caught: unknown) => caught);
  expect((old as GatehouseError).code).toBe('invalid_credentials');
});
