// The OIDC helper's browser-side checks: PKCE S256 per RFC 7636, the authorization URL built
// from the live server's discovery, and a callback whose state was never issued refused.
import { Gatehouse, GatehouseError, OidcClient, pkceChallenge, randomToken } from '@gatehouse/js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';

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

/** A browser's part of the flow, by hand: the hosted /login form, then the authorize request. */
async function authorizeInBrowser(authorizationUrl: string, address: string): Promise<string> {
  const jar = new Map<string, string>();
  const remember = (response: Response) => {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const index = pair!.indexOf('=');
      jar.set(pair!.slice(0, index), pair!.slice(index + 1));
    }
  };
  const cookies = () => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
  const form = await fetch(`${server.url}/login`, { headers: { cookie: cookies() } });
  remember(form);
  const csrf = (await form.text()).match(/name="csrf_token" value="([^"]+)"/)?.[1];
  expect(csrf, 'the login form has a CSRF token').toBeTruthy();
  const signedIn = await fetch(`${server.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookies(), origin: server.url },
    body: new URLSearchParams({ identifier: address, password: PASSWORD, csrf_token: csrf! }),
  });
  expect(signedIn.status, await signedIn.clone().text()).toBeGreaterThanOrEqual(300);
  remember(signedIn);
  const authorized = await fetch(authorizationUrl, { redirect: 'manual', headers: { cookie: cookies() } });
  expect([302, 303]).toContain(authorized.status);
  return authorized.headers.get('location')!;
}

test('the whole code flow with PKCE: tokens from the live server, nonce checked, state spent', async () => {
  const redirectUri = 'http://localhost:5173/callback';
  const created = JSON.parse(
    await server.cli('client', 'create', '--name', 'SPA', '--public', '--redirect-uri', redirectUri, '--skip-consent', '--json'),
  );
  const address = email('oidc');
  await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });

  const storage = memory();
  const oidc = new OidcClient({ issuer: server.url, clientId: created.client_id, redirectUri, storage });
  const callback = await authorizeInBrowser(await oidc.authorizationUrl(), address);
  expect(callback.startsWith(`${redirectUri}?`)).toBe(true);

  const tokens = await oidc.handleRedirect(callback);
  expect(tokens.token_type).toMatch(/^bearer$/i);
  expect(tokens.access_token).toBeTruthy();
  expect(tokens.claims?.email).toBe(address);
  expect(tokens.claims?.aud).toEqual(expect.anything());

  // The state works once: the same callback again is refused before any exchange.
  const replay = await oidc.handleRedirect(callback).catch((caught: unknown) => caught);
  expect((replay as GatehouseError).code).toBe('oidc_state_mismatch');

  // An ID token whose nonce is not the one this browser sent is refused.
  const second = await authorizeInBrowser(await oidc.authorizationUrl(), address);
  const state = new URL(second).searchParams.get('state')!;
  const parked = JSON.parse(storage.getItem(`gatehouse.oidc.${state}`)!);
  storage.setItem(`gatehouse.oidc.${state}`, JSON.stringify({ ...parked, nonce: 'another-nonce' }));
  const mismatch = await oidc.handleRedirect(second).catch((caught: unknown) => caught);
  expect((mismatch as GatehouseError).code).toBe('oidc_id_token_invalid');
});
