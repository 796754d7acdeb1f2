// @vitest-environment jsdom
// The React components against a live server, in jsdom: SignIn (password, then the MFA step),
// SignUp, UserButton (keyboard, sign-out), OrganizationSwitcher, Protect, the hooks.
import { Gatehouse } from '@gatehouse/js';
import {
  GatehouseProvider,
  OrganizationSwitcher,
  Protect,
  SignIn,
  SignUp,
  UserButton,
  useAuth,
  useOrganization,
} from '@gatehouse/react';
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';
import { base32Decode, currentStep, totpAt } from './support/totp.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

afterEach(() => cleanup());

function App({ client }: { client: Gatehouse }) {
  return (
    <GatehouseProvider client={client}>
      <Protect fallback={<SignIn passkeys={false} />}>
        <Signed />
        <UserButton />
        <OrganizationSwitcher />
      </Protect>
    </GatehouseProvider>
  );
}

function Signed() {
  const { userId } = useAuth();
  const { organization } = useOrganization();
  return (
    <p>
      Signed in as {userId}
      {organization ? ` in ${organization.org_slug}` : ''}
    </p>
  );
}

function type(label: string | RegExp, value: string) {
  fireEvent.change(screen.getByLabelText(label), { target: { value } });
}

async function registered(): Promise<{ address: string; client: Gatehouse }> {
  const address = email('react');
  const client = new Gatehouse({ url: server.url });
  await client.signUp({ email: address, password: PASSWORD, first_name: 'Ada', last_name: 'Lovelace' });
  return { address, client };
}

test('SignIn signs in through the form; Protect then shows its children', async () => {
  const { address } = await registered();
  const client = new Gatehouse({ url: server.url });
  render(<App client={client} />);

  expect(screen.getByRole('heading', { name: 'Sign in' })).toBeTruthy();
  type('Email address', address);
  type('Password', PASSWORD);
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));

  await screen.findByText(new RegExp(`Signed in as ${client.user?.id ?? 'usr_'}`));
  expect(client.user?.email).toBe(address);
  expect(screen.getByRole('button', { name: 'Account menu for Ada Lovelace' })).toBeTruthy();
});

test('a wrong password shows the server error in an alert, fields keep their labels', async () => {
  const { address } = await registered();
  render(<App client={new Gatehouse({ url: server.url })} />);
  type('Email address', address);
  type('Password', 'Wrong-password-42!');
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
  await waitFor(() => expect(screen.getByRole('alert').textContent).toBe('The email or password is not right.'));
  expect(screen.queryByText(/Signed in as/)).toBeNull();
});

test('SignIn walks the MFA step with a TOTP code, focus on the code field', async () => {
  const { address, client: owner } = await registered();
  const enrolment = await owner.beginTotpEnrolment();
  const secret = base32Decode(enrolment.secret);
  const step = currentStep();
  await owner.confirmTotpEnrolment(totpAt(secret, step));

  const client = new Gatehouse({ url: server.url });
  render(<App client={client} />);
  type('Email address', address);
  type('Password', PASSWORD);
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));

  await screen.findByRole('heading', { name: 'Two-step verification' });
  const code = screen.getByLabelText('Verification code');
  await waitFor(() => expect(document.activeElement).toBe(code));
  fireEvent.change(code, { target: { value: totpAt(secret, step + 1) } });
  fireEvent.click(screen.getByRole('button', { name: 'Verify' }));
  await screen.findByText(/Signed in as/);
  expect(client.claims()?.amr).toContain('mfa');
});

test('UserButton opens with the keyboard, Escape returns focus, Sign out signs out', async () => {
  const { client } = await registered();
  render(<App client={client} />);
  // A client that already holds a session: the provider checks it with the server first.
  const button = await screen.findByRole('button', { name: 'Account menu for Ada Lovelace' });
  expect(button.getAttribute('aria-expanded')).toBe('false');

  fireEvent.keyDown(button, { key: 'ArrowDown' });
  const signOut = await screen.findByRole('menuitem', { name: 'Sign out' });
  expect(button.getAttribute('aria-expanded')).toBe('true');
  await waitFor(() => expect(document.activeElement).toBe(signOut));
  fireEvent.keyDown(signOut, { key: 'Escape' });
  expect(screen.queryByRole('menu')).toBeNull();
  expect(document.activeElement).toBe(button);

  fireEvent.keyDown(button, { key: 'Enter' });
  fireEvent.click(await screen.findByRole('menuitem', { name: 'Sign out' }));
  await screen.findByRole('heading', { name: 'Sign in' });
  expect(client.isSignedIn).toBe(false);
});

test('OrganizationSwitcher lists the organizations and switches the active one', async () => {
  const { client } = await registered();
  const slug = `react-${Date.now().toString(36)}`;
  const created = await client.createOrganization({ name: 'React Co', slug });
  render(<App client={client} />);

  const select = (await screen.findByLabelText('Organization')) as HTMLSelectElement;
  await screen.findByRole('option', { name: 'React Co' });
  expect(select.value).toBe('');
  await act(async () => {
    fireEvent.change(select, { target: { value: created.id } });
  });
  await screen.findByText(new RegExp(`in ${slug}`));
  expect(client.activeOrganization()?.org_id).toBe(created.id);
  expect(select.value).toBe(created.id);
});

test('Protect with a permission hides its children until the organization grants it', async () => {
  const { client } = await registered();
  const created = await client.createOrganization({ name: 'Perm', slug: `perm-${Date.now().toString(36)}` });
  render(
    <GatehouseProvider client={client}>
      <Protect permission="org:update" fallback={<p>No permission</p>}>
        <p>Settings</p>
      </Protect>
    </GatehouseProvider>,
  );
  await screen.findByText('No permission');
  await act(async () => {
    await client.switchOrganization(created.id);
  });
  await screen.findByText('Settings');
});

test('SignUp creates the account and reports password problems by field', async () => {
  const client = new Gatehouse({ url: server.url });
  let signedUp = '';
  render(
    <GatehouseProvider client={client}>
      <SignUp onSignedUp={(user) => (signedUp = user.email ?? '')} />
    </GatehouseProvider>,
  );
  const address = email('signup');
  type('Email address', address);
  type('Password', 'password');
  fireEvent.click(screen.getByRole('button', { name: 'Create the account' }));
  await waitFor(() => expect(screen.getByRole('alert').textContent).toBe('Choose a stronger password.'));
  expect(screen.getByLabelText('Password').getAttribute('aria-invalid')).toBe('true');

  type('Password', PASSWORD);
  fireEvent.click(screen.getByRole('button', { name: 'Create the account' }));
  await waitFor(() => expect(signedUp).toBe(address));
  expect(client.isSignedIn).toBe(true);
});
