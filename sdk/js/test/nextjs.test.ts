// @gatehouse/nextjs called as Next.js would call it, with web `Request` objects, against the
// live server and its JWKS: the middleware, auth()/currentUser(), the cookie-mode route handlers
// (driven by @gatehouse/js in cookie mode), and a signing-key rotation.
import { Gatehouse, decodeJwtPayload } from '@gatehouse/js';
import { createGatehouse, createVerifier, TokenError } from '@gatehouse/nextjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PASSWORD, email, startServer, type LiveServer } from './support/server.js';

const APP = 'http://app.localhost:3000';
let server: LiveServer;
let gatehouse: ReturnType<typeof createGatehouse>;

beforeAll(async () => {
  server = await startServer();
  gatehouse = createGatehouse({ url: server.url });
});

afterAll(async () => {
  await server?.stop();
});

async function signedIn(): Promise<Gatehouse> {
  const client = new Gatehouse({ url: server.url });
  await client.signUp({ email: email('next'), password: PASSWORD, first_name: 'Nel' });
  return client;
}

function tampered(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  claims.sub = 'usr_someone_else';
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
}

describe('middleware', () => {
  const middleware = () =>
    gatehouse.middleware({ protect: ['/dashboard', '/api/private'], publicRoutes: ['/dashboard/public'] });

  test('a valid bearer token or access cookie passes', async () => {
    const client = await signedIn();
    const token = client.session!.accessToken!;
    expect(await middleware()(new Request(`${APP}/dashboard`, { headers: { authorization: `Bearer ${token}` } }))).toBeUndefined();
    expect(await middleware()(new Request(`${APP}/api/private/x`, { headers: { cookie: `gatehouse_access=${token}` } }))).toBeUndefined();
  });

  test('a signed-out page visit is redirected to sign-in with return_to; an API call gets 401', async () => {
    const page = await middleware()(new Request(`${APP}/dashboard/settings?tab=2`));
    expect(page?.status).toBe(307);
    const location = new URL(page!.headers.get('location')!);
    expect(location.pathname).toBe('/sign-in');
    expect(location.searchParams.get('return_to')).toBe('/dashboard/settings?tab=2');

    const api = await middleware()(new Request(`${APP}/api/private/items`));
    expect(api?.status).toBe(401);
    expect(api?.headers.get('content-type')).toBe('application/problem+json');
    expect((await api!.json()).code).toBe('invalid_token');
  });

  test('routes outside `protect`, public routes and the handlers pass without a token', async () => {
    for (const path of ['/', '/about', '/dashboard/public', '/api/gatehouse/v1/auth/sign-in', '/sign-in']) {
      expect(await middleware()(new Request(`${APP}${path}`)), path).toBeUndefined();
    }
  });

  test('a tampered, a wrong-audience and a non-JWT token are refused', async () => {
    const client = await signedIn();
    const token = client.session!.accessToken!;
    const api = (value: string) =>
      middleware()(new Request(`${APP}/api/private`, { headers: { authorization: `Bearer ${value}` } }));
    expect((await api(tampered(token)))?.status).toBe(401);
    expect((await api('not.a.jwt'))?.status).toBe(401);

    const strict = createVerifier({ url: server.url, audience: 'https://another-api.example' });
    await expect(strict(token)).rejects.toBeInstanceOf(TokenError);
    const otherIssuer = createVerifier({ url: server.url, issuer: 'https://elsewhere.example' });
    await expect(otherIssuer(token)).rejects.toMatchObject({ code: 'token_invalid' });
    await expect(createVerifier({ url: server.url })(token)).resolves.toMatchObject({ sub: client.user!.id });
  });

  test('only a refresh cookie left: the page goes through the refresh handler and back', async () => {
    const client = await signedIn();
    const refresh = client.session!.refreshToken!;
    const visit = await middleware()(new Request(`${APP}/dashboard`, { headers: { cookie: `gatehouse_refresh=${refresh}` } }));
    expect(visit?.status).toBe(307);
    const target = new URL(visit!.headers.get('location')!);
    expect(target.pathname).toBe('/api/gatehouse/refresh');
    expect(target.searchParams.get('return_to')).toBe('/dashboard');

    const answer = await gatehouse.handlers.GET(new Request(target, { headers: { cookie: `gatehouse_refresh=${refresh}` } }));
    expect(answer.status).toBe(303);
    expect(answer.headers.get('location')).toBe('/dashboard');
    const cookies = answer.headers.getSetCookie();
    const access = cookies.find((cookie) => cookie.startsWith('gatehouse_access='))!;
    expect(access).toMatch(/HttpOnly/);
    expect(access).toMatch(/SameSite=Lax/);
    const token = decodeURIComponent(access.split(';')[0]!.split('=')[1]!);
    expect((await gatehouse.auth(new Request(`${APP}/`, { headers: { cookie: `gatehouse_access=${token}` } }))).userId).toBe(client.user!.id);

    // No open redirect: return_to must be a path of this site.
    const evil = await gatehouse.handlers.GET(new Request(`${APP}/api/gatehouse/refresh?return_to=//evil.example/x`));
    expect(evil.headers.get('location')).toBe('/');
  });
});

describe('auth() and currentUser()', () => {
  test('read the verified caller and the user, with the organization claims after a switch', async () => {
    const client = await signedIn();
    const org = await client.createOrganization({ name: 'Next Co', slug: `next-${Date.now().toString(36)}` });
    await client.switchOrganization(org.id);
    const request = new Request(`${APP}/`, { headers: { cookie: `other=1; gatehouse_access=${client.session!.accessToken}` } });

    const caller = await gatehouse.auth(request);
    expect(caller.userId).toBe(client.user!.id);
    expect(caller.sessionId).toBe(client.session!.sessionId);
    expect(caller.orgId).toBe(org.id);
    expect(caller.orgRole).toBe('owner');
    expect(caller.has({ permission: 'org:update' })).toBe(true);
    expect(caller.has({ permission: 'no:such' })).toBe(false);

    expect((await gatehouse.currentUser(request))?.first_name).toBe('Nel');
    expect((await gatehouse.auth(new Request(`${APP}/`))).userId).toBeNull();
    expect(await gatehouse.currentUser(new Request(`${APP}/`))).toBeNull();
  });
});

describe('cookie mode: @gatehouse/js through the route handlers', () => {
  /** The browser: a cookie jar in front of the app, whose /api/gatehouse routes are the handlers. */
  function browser() {
    const jar = new Map<string, string>();
    const client = new Gatehouse({ url: `${APP}/api/gatehouse`, storage: 'cookie', fetch: appFetchOf(jar) });
    return { jar, client };
  }

  function appFetchOf(jar: Map<string, string>): typeof fetch {
    return async (input, init) => {
      const request = new Request(new URL(String(input), APP), init);
      if (jar.size > 0) request.headers.set('cookie', [...jar].map(([name, value]) => `${name}=${value}`).join('; '));
      const handler = request.method === 'GET' ? gatehouse.handlers.GET : gatehouse.handlers.POST;
      const response = await handler(request);
      for (const cookie of response.headers.getSetCookie()) {
        const [pair, ...attributes] = cookie.split(';');
        const [name, value] = pair!.split('=') as [string, string];
        if (attributes.some((attribute) => attribute.trim() === 'Max-Age=0')) jar.delete(name);
        else jar.set(name, value);
      }
      return response;
    };
  }

  test('sign-in sets httpOnly cookies, JavaScript never holds a token, refresh and sign-out work', async () => {
    const address = email('cookie');
    await new Gatehouse({ url: server.url }).signUp({ email: address, password: PASSWORD });
    const { jar, client } = browser();

    const result = await client.signIn({ email: address, password: PASSWORD });
    expect(result.status).toBe('signed_in');
    expect(client.session?.accessToken).toBeUndefined();
    expect(client.session?.refreshToken).toBeUndefined();
    expect(await client.getAccessToken()).toBeNull();
    expect(jar.get('gatehouse_refresh')).toMatch(/^gtr_/);
    const firstAccess = jar.get('gatehouse_access')!;

    // The app's server sees the user through the cookie.
    const request = new Request(`${APP}/`, { headers: { cookie: `gatehouse_access=${firstAccess}` } });
    expect((await gatehouse.auth(request)).userId).toBe(result.status === 'signed_in' ? result.user.id : '');
    expect((await client.getUser())?.email).toBe(address);

    const refreshed = await Promise.all(Array.from({ length: 5 }, () => client.refresh()));
    expect(new Set(refreshed.map((session) => session.sessionId)).size).toBe(1);
    expect(jar.get('gatehouse_access')).not.toBe(firstAccess);

    const org = await client.createOrganization({ name: 'Cookie Co', slug: `cookie-${Date.now().toString(36)}` });
    const active = await client.switchOrganization(org.id);
    expect(active?.org_id).toBe(org.id);
    expect(client.activeOrganization()?.org_id).toBe(org.id);
    expect(decodeJwtPayload<{ org_id?: string }>(decodeURIComponent(jar.get('gatehouse_access')!))?.org_id).toBe(org.id);
    // The switch rotated the refresh cookie too: the next refresh keeps the organization.
    await client.refresh();
    expect(decodeJwtPayload<{ org_id?: string }>(decodeURIComponent(jar.get('gatehouse_access')!))?.org_id).toBe(org.id);

    // A page load: a new client on the same cookies finds the session through the handlers.
    const reloaded = new Gatehouse({ url: `${APP}/api/gatehouse`, storage: 'cookie', fetch: appFetchOf(jar) });
    expect(reloaded.isSignedIn).toBe(false);
    expect((await reloaded.restoreSession())?.user.email).toBe(address);
    // No token in JavaScript, but its claims: the organization chosen before the reload.
    expect(reloaded.session?.accessToken).toBeUndefined();
    expect(reloaded.activeOrganization()?.org_id).toBe(org.id);

    await reloaded.signOut();
    expect(jar.size).toBe(0);
    expect(reloaded.isSignedIn).toBe(false);
    // Without cookies there is nothing to restore.
    expect(await new Gatehouse({ url: `${APP}/api/gatehouse`, storage: 'cookie', fetch: appFetchOf(jar) }).restoreSession()).toBeNull();
  });

  test('a POST from another origin is refused before it reaches Gatehouse', async () => {
    const answer = await gatehouse.handlers.POST(
      new Request(`${APP}/api/gatehouse/v1/auth/sign-out`, { method: 'POST', headers: { origin: 'http://evil.example' } }),
    );
    expect(answer.status).toBe(403);
    expect((await answer.json()).code).toBe('origin_refused');
  });
});

describe('JWKS: cached, fetched again for an unknown kid, rate-limited', () => {
  function counted() {
    const seen = { jwks: 0 };
    const fetcher: typeof fetch = (input, init) => {
      if (String(input).endsWith('/.well-known/jwks.json')) seen.jwks += 1;
      return fetch(input, init);
    };
    return { seen, fetcher };
  }

  test('a signing-key rotation: tokens of the new key verify after one more fetch, those of the old key still do', async () => {
    const { seen, fetcher } = counted();
    const verify = createVerifier({ url: server.url, fetch: fetcher, jwksCooldownSeconds: 0 });
    const before = await signedIn();
    const oldToken = before.session!.accessToken!;
    await verify(oldToken);
    await verify(oldToken);
    expect(seen.jwks).toBe(1); // cached

    const created = JSON.parse(await server.cli('admin-key', 'create', '--name', 'sdk-rotation', '--json'));
    const adminKey: string = created.key ?? created.api_key ?? created.secret;
    expect(adminKey, JSON.stringify(created)).toMatch(/^gta_/);
    const rotation = await fetch(`${server.url}/v1/admin/keys/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}` },
    });
    expect(rotation.status).toBe(201);

    const after = await signedIn();
    const newToken = after.session!.accessToken!;
    const kid = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid;
    expect(kid(newToken)).not.toBe(kid(oldToken));
    await expect(verify(newToken)).resolves.toMatchObject({ sub: after.user!.id });
    expect(seen.jwks).toBe(2);
    // The old key stays published until its tokens expire.
    await expect(verify(oldToken)).resolves.toMatchObject({ sub: before.user!.id });
    expect(seen.jwks).toBe(2);
  });

  test('forged unknown kids do not make it fetch again within the cooldown', async () => {
    const { seen, fetcher } = counted();
    const verify = createVerifier({ url: server.url, fetch: fetcher, jwksCooldownSeconds: 60 });
    const token = (await signedIn()).session!.accessToken!;
    await verify(token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    for (let index = 0; index < 5; index += 1) {
      const forgedHeader = { ...JSON.parse(Buffer.from(header, 'base64url').toString()), kid: `forged-${index}` };
      const forged = `${Buffer.from(JSON.stringify(forgedHeader)).toString('base64url')}.${payload}.${signature}`;
      await expect(verify(forged)).rejects.toMatchObject({ code: 'token_invalid' });
    }
    expect(seen.jwks).toBe(1);
  });
});
