import {
  OrganizationSwitcher,
  Protect,
  SignIn,
  SignUp,
  UserButton,
  displayName,
  messageFor,
  useGatehouse,
  useOrganization,
  useUser,
} from '@gatehouse/react';
import { useState, type FormEvent } from 'react';

export function App() {
  const [mode, setMode] = useState<'sign-in' | 'sign-up'>('sign-in');
  return (
    <>
      <header className="app-header">
        <p className="app-brand">Example app</p>
        <Protect>
          <nav className="app-nav" aria-label="Account">
            <OrganizationSwitcher />
            <UserButton />
          </nav>
        </Protect>
      </header>
      <main className="app-main">
        <Protect
          fallback={
            <div className="app-auth">
              <h1>Welcome</h1>
              {mode === 'sign-in' ? <SignIn /> : <SignUp onSignedUp={() => setMode('sign-in')} />}
              <p>
                <button className="app-switch" type="button" onClick={() => setMode(mode === 'sign-in' ? 'sign-up' : 'sign-in')}>
                  {mode === 'sign-in' ? 'No account yet? Create one' : 'Have an account? Sign in'}
                </button>
              </p>
            </div>
          }
        >
          <Dashboard />
        </Protect>
      </main>
    </>
  );
}

function Dashboard() {
  const { user } = useUser();
  const { organization } = useOrganization();
  return (
    <div className="app-dashboard">
      <h1>Hello, {user ? displayName(user) : ''}</h1>
      <p>
        Signed in as <strong>{user?.email}</strong>
        {organization ? (
          <>
            {' '}
            in <strong>{organization.org_slug}</strong> as {organization.org_role}
          </>
        ) : null}
        .
      </p>
      <NewOrganization />
      <AddPasskey />
    </div>
  );
}

function NewOrganization() {
  const client = useGatehouse();
  const { reload } = useOrganization();
  const [name, setName] = useState('');
  const [status, setStatus] = useState('');

  async function submit(event: FormEvent) {
    event.preventDefault();
    const slug = name.toLowerCase().trim().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    try {
      await client.createOrganization({ name, slug });
      setStatus(`Created ${name}.`);
      setName('');
      await reload();
    } catch (error) {
      setStatus(messageFor(error));
    }
  }

  return (
    <form className="gh-card gh-form" onSubmit={submit} aria-labelledby="new-org-title">
      <h2 className="gh-title" id="new-org-title">
        New organization
      </h2>
      <div className="gh-field">
        <label className="gh-label" htmlFor="new-org-name">
          Organization name
        </label>
        <input id="new-org-name" className="gh-input" required value={name} onChange={(event) => setName(event.target.value)} />
      </div>
      <button className="gh-button gh-button-primary" type="submit">
        Create organization
      </button>
      <p role="status">{status}</p>
    </form>
  );
}

function AddPasskey() {
  const client = useGatehouse();
  const [status, setStatus] = useState('');
  async function add() {
    try {
      const passkey = await client.registerPasskey();
      setStatus(`Passkey added: ${passkey.name}.`);
    } catch (error) {
      setStatus(messageFor(error));
    }
  }
  return (
    <section className="gh-card" aria-labelledby="passkey-title">
      <h2 className="gh-title" id="passkey-title">
        Passkeys
      </h2>
      <button className="gh-button" type="button" onClick={() => void add()}>
        Add a passkey
      </button>
      <p role="status">{status}</p>
    </section>
  );
}
