// @vitest-environment jsdom
// A server whose MFA policy is `required`: sign-up answers sign_in_required, the sign-in's
// second step is an enrolment, through the client and through the React components.
import { Gatehouse } from '@gatehouse/js';
import { GatehouseProvider, Protect, SignIn, SignUp, useUser } from '@gatehouse/react';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';
import { base32Decode, currentStep, totpAt } from './support/totp.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer({ settings: { GATEHOUSE_MFA_POLICY: 'required' } });
});

afterAll(async () => {
  await server?.stop();
});

afterEach(() => cleanup());

test('the client: sign_in_required, then enrolment with the mfa token, backup codes, signed in', async () => {
  const address = email('required');
  const client = new Gatehouse({ url: server.url });
  const signedUp = await client.signUp({ email: address, password: PASSWORD });
  expect(signedUp.status).toBe('sign_in_required');
  expect(client.isSignedIn).toBe(false);

  const first = await client.signIn({ email: address, password: PASSWORD });
  if (first.status !== 'mfa_required') throw new Error('expected the second step');
  expect(first.enrolmentRequired).toBe(true);
  const enrolment = await client.beginRequiredTotpEnrolment(first.mfaToken);
  const code = totpAt(base32Decode(enrolment.secret), currentStep());

  const held = await client.confirmRequiredTotpEnrolment(first.mfaToken, code, { holdSession: true });
  expect(held.backupCodes.length).toBeGreaterThan(0);
  expect(client.isSignedIn).toBe(false); // held until complete()
  expect(held.complete().user.email).toBe(address);
  expect(client.isSignedIn).toBe(true);
  expect((await client.getUser())?.email).toBe(address);
});

function Home() {
  const { user } = useUser();
  return <p>Home of {user?.email}</p>;
}

test('SignUp → enrolment (QR image, key, code) → backup codes → Continue → signed in', async () => {
  const address = email('required-ui');
  const client = new Gatehouse({ url: server.url });
  render(
    <GatehouseProvider client={client}>
      <Protect fallback={<SignUp />}>
        <Home />
      </Protect>
    </GatehouseProvider>,
  );
  fireEvent.change(screen.getByLabelText('Email address'), { target: { value: address } });
  fireEvent.change(screen.getByLabelText('Password'), { target: { value: PASSWORD } });
  fireEvent.click(screen.getByRole('button', { name: 'Create the account' }));

  await screen.findByRole('heading', { name: 'Set up two-step verification' });
  const qr = await screen.findByRole('img', { name: 'QR code for your authenticator app' });
  expect(qr.getAttribute('src')).toMatch(/^data:image\/svg\+xml/);
  const secret = screen.getByTestId('gh-totp-secret').textContent!;
  fireEvent.change(screen.getByLabelText('Verification code'), {
    target: { value: totpAt(base32Decode(secret), currentStep()) },
  });
  fireEvent.click(screen.getByRole('button', { name: 'Verify and continue' }));

  const codes = await screen.findByRole('list', { name: 'Backup codes' });
  expect(codes.querySelectorAll('li').length).toBeGreaterThan(0);
  await waitFor(() => expect(document.activeElement?.textContent).toBe('Save your backup codes'));
  expect(client.isSignedIn).toBe(false);
  fireEvent.click(screen.getByRole('button', { name: 'Continue' }));
  await screen.findByText(`Home of ${address}`);
});

test('SignIn of an account without a factor goes to the enrolment', async () => {
  const address = email('required-signin');
  await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });
  render(
    <GatehouseProvider client={new Gatehouse({ url: server.url })}>
      <SignIn passkeys={false} />
    </GatehouseProvider>,
  );
  fireEvent.change(screen.getByLabelText('Email address'), { target: { value: address } });
  fireEvent.change(screen.getByLabelText('Password'), { target: { value: PASSWORD } });
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
  await screen.findByRole('heading', { name: 'Set up two-step verification' });
  await screen.findByTestId('gh-totp-secret');
});
