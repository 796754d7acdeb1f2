// Refresh: one network refresh for many concurrent callers (the server rotates refresh tokens
// and revokes the whole session when one is used twice, so a client that sent 20 would be
// signed out), and a refused refresh signs the client out.
import { Gatehouse, GatehouseError, localStorageStorage, type AuthEvent } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

test('20 concurrent refresh() calls make one request and share its tokens', async () => {
  let refreshRequests = 0;
  const counting: typeof fetch = (input, init) => {
    if (String(input).endsWith('/v1/auth/refresh')) refreshRequests += 1;
    return fetch(input, init);
  };
  const client = new Gatehouse({ url: server.url, fetch: counting });
  await client.signUp({ email: email('many'), password: PASSWORD });
  const before = client.session!;
  const events: AuthEvent[] = [];
  client.onAuthStateChange((event) => events.push(event));

  const sessions = await Promise.all(Array.from({ length: 20 }, () => client.refresh()));

  expect(refreshRequests).toBe(1);
  expect(events).toEqual(['TOKEN_REFRESHED']);
  const accessTokens = new Set(sessions.map((session) => session.accessToken));
  expect(accessTokens.size).toBe(1);
  expect(sessions[0]!.refreshToken).not.toBe(before.refreshToken);
  expect(sessions[0]!.accessToken).not.toBe(before.accessToken);
  expect(client.session?.refreshToken).toBe(sessions[0]!.refreshToken);

  // The server rotated once: the new refresh token is live (a second rotation would have
  // revoked the family), and the old one is spent.
  const again = await client.refresh();
  expect(again.sessionId).toBe(before.sessionId);
  expect(await client.getUser()).not.toBeNull();
  expect(refreshRequests).toBe(2);
});

test('getAccessToken() from 20 callers with an expiring token: one refresh, one token', async () => {
  let refreshRequests = 0;
  const counting: typeof fetch = (input, init) => {
    if (String(input).endsWith('/v1/auth/refresh')) refreshRequests += 1;
    return fetch(input, init);
  };
  // A margin longer than the token's life: every caller sees it as about to expire.
  const client = new Gatehouse({ url: server.url, fetch: counting, refreshMarginSeconds: 24 * 3600 });
  await client.signUp({ email: email('expiring'), password: PASSWORD });
  const old = client.session!.accessToken;

  const tokens = await Promise.all(Array.from({ length: 20 }, () => client.getAccessToken()));
  expect(refreshRequests).toBe(1);
  expect(new Set(tokens).size).toBe(1);
  expect(tokens[0]).not.toBe(old);
});

test('a refresh token the server refuses signs the client out with invalid_grant', async () => {
  const client = new Gatehouse({ url: server.url });
  await client.signUp({ email: email('stolen'), password: PASSWORD });
  const stolen = client.session!.refreshToken!;
  // Someone else uses the refresh token first: the client's copy is now spent.
  const elsewhere = await fetch(`${server.url}/v1/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: stolen }),
  });
  expect(elsewhere.status).toBe(200);
  const events: AuthEvent[] = [];
  client.onAuthStateChange((event) => events.push(event));

  const error = await client.refresh().catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(GatehouseError);
  expect((error as GatehouseError).code).toBe('invalid_grant');
  expect((error as GatehouseError).status).toBe(401);
  expect(client.isSignedIn).toBe(false);
  expect(events).toEqual(['SIGNED_OUT']);
});

test('two clients on one shared storage (two tabs): the second adopts the rotation of the first', async () => {
  const items = new Map<string, string>();
  const shared = {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, value),
    removeItem: (key: string) => void items.delete(key),
  } as unknown as Storage;
  let refreshRequests = 0;
  const counting: typeof fetch = (input, init) => {
    if (String(input).endsWith('/v1/auth/refresh')) refreshRequests += 1;
    return fetch(input, init);
  };
  const first = new Gatehouse({ url: server.url, storage: localStorageStorage('tabs', shared), fetch: counting });
  await first.signUp({ email: email('tabs'), password: PASSWORD });
  const second = new Gatehouse({ url: server.url, storage: localStorageStorage('tabs', shared), fetch: counting });
  const stale = second.session!.refreshToken;

  const rotated = await first.refresh();
  expect(refreshRequests).toBe(1);
  // The second tab still holds the spent refresh token; its refresh must not send it.
  const adopted = await second.refresh();
  expect(refreshRequests).toBe(1);
  expect(adopted.refreshToken).toBe(rotated.refreshToken);
  expect(adopted.refreshToken).not.toBe(stale);
  // The session is alive for both (a reuse would have revoked it).
  expect((await first.getUser())?.id).toBe(first.user!.id);
  await second.refresh();
  expect(refreshRequests).toBe(2);
  expect((await second.getUser())).not.toBeNull();
});
