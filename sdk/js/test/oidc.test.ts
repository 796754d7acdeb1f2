// The OIDC helper's browser-side checks: PKCE S256 per RFC 7636, the authorization URL built
// from the live server's discovery, and a callback whose state was never issued refused.
import { GatehouseError, OidcClient, pkceChallenge, randomToken } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startServer, type LiveServer } from './support/server.js';

let server: LiveServer;

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  await server?.stop();
});

function memory(): Storage {
  const items = new Map<string, string>();
  return {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, value),
    removeItem: (key: string) => void items.delete(key),
    get length() {
      return items.size;
    },
    clear: () => items.clear(),
    key: (index: number) => [...items.keys()][index] ?? null,
  };
}

test('pkceChallenge is RFC 7636 appendix B', async () => {
  expect(await pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  );
  // 32 random bytes: a 43-character verifier of the unreserved alphabet.
  expect(randomToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(randomToken()).not.toBe(randomToken());
});

test('authorizationUrl targets the discovered endpoint with S256, state and nonce', async () => {
  const storage = memory();
  const client = new OidcClient({
    issuer: server.url,
    clientId: 'spa',
    redirectUri: 'http://localhost:5173/callback',
    storage,
  });
  const url = new URL(await client.authorizationUrl());
  expect(`${url.origin}${url.pathname}`).toBe(`${server.url}/oauth2/authorize`);
  const params = Object.fromEntries(url.searchParams);
  expect(params).toMatchObject({
    response_type: 'code',
    client_id: 'spa',
    redirect_uri: 'http://localhost:5173/callback',
    scope: 'openid profile email',
    code_challenge_method: 'S256',
  });
  expect(params.state).toMatch(/^[\w-]{43}$/);
  expect(params.nonce).toMatch(/^[\w-]{43}$/);
  const parked = JSON.parse(storage.getItem(`gatehouse.oidc.${params.state}`)!);
  expect(await pkceChallenge(parked.verifier)).toBe(params.code_challenge);
});

test('a callback with a state this browser never issued is refused before any exchange', async () => {
  const client = new OidcClient({ issuer: server.url, clientId: 'spa', redirectUri: 'http://localhost/cb', storage: memory() });
  const error = await client
    .handleRedirect('http://localhost/cb?code=abc&state=forged')
    .catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(GatehouseError);
  expect((error as GatehouseError).code).toBe('oidc_state_mismatch');
});
