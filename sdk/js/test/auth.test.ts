// Sign-up, sign-in, the user, sign-out, storage and the error codes of @gatehouse/js against a
// live server.
import { Gatehouse, GatehouseError, type AuthEvent, type TokenStorage } from '@gatehouse/js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

async function failure(promise: Promise<unknown>): Promise<GatehouseError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(GatehouseError);
  return error as GatehouseError;
}

describe('sign-up and sign-in', () => {
  test('sign-up signs the new user in and getUser reads them back from /v1/me', async () => {
    const client = new Gatehouse({ url: server.url });
    const address = email('ada');
    const events: AuthEvent[] = [];
    client.onAuthStateChange((event) => events.push(event));

    const result = await client.signUp({ email: address, password: PASSWORD, first_name: 'Ada' });
    expect(result.status).toBe('signed_in');
    expect(client.isSignedIn).toBe(true);
    expect(client.user?.email).toBe(address);
    expect(client.session?.accessToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(client.session?.refreshToken).toMatch(/^gtr_/);
    expect(events).toEqual(['SIGNED_IN']);

    const user = await client.getUser();
    expect(user?.email).toBe(address);
    expect(user?.first_name).toBe('Ada');
    const claims = client.claims();
    expect(claims?.sub).toBe(user?.id);
    expect(claims?.sid).toBe(client.session?.sessionId);
  });

  test('sign-in with the password of an existing account', async () => {
    const address = email('grace');
    await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });

    const client = new Gatehouse({ url: server.url });
    const result = await client.signIn({ email: address, password: PASSWORD });
    expect(result.status).toBe('signed_in');
    if (result.status !== 'signed_in') return;
    expect(result.user.email).toBe(address);
    expect((await client.getUser())?.id).toBe(result.user.id);
  });

  test('sign-out ends the session on the server: its tokens no longer work', async () => {
    const client = new Gatehouse({ url: server.url });
    await client.signUp({ email: email('leaving'), password: PASSWORD });
    const { accessToken, refreshToken } = client.session!;
    const events: AuthEvent[] = [];
    client.onAuthStateChange((event, session) => {
      events.push(event);
      expect(session).toBeNull();
    });

    await client.signOut();
    expect(client.isSignedIn).toBe(false);
    expect(events).toEqual(['SIGNED_OUT']);
    expect(await client.getUser()).toBeNull();

    const me = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(me.status).toBe(401);
    const refreshed = await fetch(`${server.url}/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
    expect(refreshed.status).toBe(401);
  });

  test('localStorage storage: a new client on the same storage is still signed in', async () => {
    const items = new Map<string, string>();
    const storage = {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
      removeItem: (key: string) => void items.delete(key),
    };
    // What `storage: 'localStorage'` does, on a stand-in for the browser's localStorage.
    const { localStorageStorage } = await import('@gatehouse/js');
    const tokens: TokenStorage = localStorageStorage('gatehouse.session', storage as unknown as Storage);
    const first = new Gatehouse({ url: server.url, storage: tokens });
    const address = email('kept');
    await first.signUp({ email: address, password: PASSWORD });
    expect(items.has('gatehouse.session')).toBe(true);

    const second = new Gatehouse({ url: server.url, storage: tokens });
    expect(second.isSignedIn).toBe(true);
    expect((await second.getUser())?.email).toBe(address);

    await second.signOut();
    expect(items.has('gatehouse.session')).toBe(false);
  });

  test('memory storage is the default: a second client knows nothing', async () => {
    const first = new Gatehouse({ url: server.url });
    await first.signUp({ email: email('alone'), password: PASSWORD });
    expect(new Gatehouse({ url: server.url }).isSignedIn).toBe(false);
  });
});

describe('errors carry the server code, status and detail', () => {
  test('a wrong password is invalid_credentials (401)', async () => {
    const address = email('wrong');
    await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });
    const client = new Gatehouse({ url: server.url });
    const error = await failure(client.signIn({ email: address, password: 'not-the-password-1A!' }));
    expect(error.code).toBe('invalid_credentials');
    expect(error.status).toBe(401);
    expect(error.detail).toBeTruthy();
    expect(client.isSignedIn).toBe(false);
  });

  test('an unknown account answers exactly like a wrong password', async () => {
    const error = await failure(
      new Gatehouse({ url: server.url }).signIn({ email: email('nobody'), password: PASSWORD }),
    );
    expect([error.code, error.status]).toEqual(['invalid_credentials', 401]);
  });

  test('a registered address is email_taken (409)', async () => {
    const address = email('twice');
    await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });
    const error = await failure(new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD }));
    expect([error.code, error.status]).toEqual(['email_taken', 409]);
  });

  test('a malformed address is validation_failed (422) with the field named', async () => {
    const error = await failure(
      new Gatehouse({ url: server.url }).signUp({ email: 'not-an-address', password: PASSWORD }),
    );
    expect([error.code, error.status]).toEqual(['validation_failed', 422]);
    expect(error.errors.map((problem) => problem.field)).toContain('email');
  });

  test('a weak password is password_too_weak (422)', async () => {
    const error = await failure(
      new Gatehouse({ url: server.url }).signUp({ email: email('weak'), password: 'password' }),
    );
    expect([error.code, error.status]).toEqual(['password_too_weak', 422]);
  });

  test('an unreachable server is network_error (status 0)', async () => {
    const error = await failure(
      new Gatehouse({ url: 'http://127.0.0.1:9' }).signIn({ email: email(), password: PASSWORD }),
    );
    expect([error.code, error.status]).toEqual(['network_error', 0]);
  });

  test('calls that need a session say not_signed_in without asking the server', async () => {
    const error = await failure(new Gatehouse({ url: 'http://127.0.0.1:9' }).listOrganizations());
    expect([error.code, error.status]).toEqual(['not_signed_in', 0]);
  });
});
