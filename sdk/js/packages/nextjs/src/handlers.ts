//! Route handlers for cookie mode (a backend-for-frontend): the browser's `@gatehouse/js`
//! client (`storage: 'cookie'`, `url: '/api/gatehouse'`) calls the same `/v1/...` paths on the
//! app's own origin; these handlers forward them to Gatehouse, keep the access and refresh
//! tokens in httpOnly cookies, and answer the browser without them. JavaScript in the page
//! never sees a token.

import { decodeJwtPayload } from '@gatehouse/js';
import { type CookieNames, refreshTokenFrom, serializeCookie, tokenFrom } from './cookies.js';

export interface HandlerOptions {
  url: string;
  names: CookieNames;
  /** Lifetime of the refresh cookie, seconds (default 7 days, Gatehouse's refresh lifetime). */
  refreshMaxAgeSeconds: number;
  fetch: typeof fetch;
}

/** Answers that carry tokens: their tokens go into cookies. */
const TOKEN_PATHS = new Set([
  '/v1/auth/sign-in',
  '/v1/auth/sign-up',
  '/v1/auth/refresh',
  '/v1/auth/mfa/verify',
  '/v1/auth/magic-link/verify',
  '/v1/auth/passkey/finish',
  '/v1/auth/mfa/enrol/totp/confirm',
  '/v1/me/organization',
]);

type Handler = (request: Request) => Promise<Response>;

export function createHandlers(options: HandlerOptions): { GET: Handler; POST: Handler; PATCH: Handler; DELETE: Handler } {
  const base = options.url.replace(/\/+$/, '');
  const { names } = options;

  const handle: Handler = async (request) => {
    const url = new URL(request.url);
    const at = url.pathname.indexOf('/v1/');
    const secure = url.protocol === 'https:';
    // GET <base>/refresh?return_to=/path: what the middleware redirects a page to when the
    // access cookie has expired but the refresh cookie is still there.
    if (at < 0 && request.method === 'GET' && url.pathname.endsWith('/refresh')) {
      return refreshAndReturn(request, url, secure);
    }
    if (at < 0) return problem(404, 'not_found', 'Unknown Gatehouse route.');
    const path = url.pathname.slice(at);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      // Cross-site requests cannot send these cookies (SameSite=Lax), and a form from another
      // site cannot send JSON without a preflight; a foreign Origin is refused outright.
      const origin = request.headers.get('origin');
      if (origin && origin !== url.origin) return problem(403, 'origin_refused', 'Cross-origin request refused.');
    }

    if (path === '/v1/auth/refresh' && !refreshTokenFrom(request.headers, names)) {
      return problem(401, 'invalid_grant', 'No session cookie.');
    }

    let body: string | undefined;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      body = await request.text();
      if (path === '/v1/auth/refresh' || path === '/v1/me/organization') {
        body = withRefreshToken(body, refreshTokenFrom(request.headers, names));
      }
    }
    const headers = new Headers({ accept: 'application/json' });
    if (body !== undefined) headers.set('content-type', 'application/json');
    const token = tokenFrom(request, names);
    if (token) headers.set('authorization', `Bearer ${token}`);
    for (const name of ['user-agent', 'accept-language', 'x-forwarded-for']) {
      const value = request.headers.get(name);
      if (value) headers.set(name, value);
    }
    let upstream: Response;
    try {
      upstream = await options.fetch(`${base}${path}${url.search}`, {
        method: request.method,
        headers,
        ...(body !== undefined ? { body } : {}),
      });
    } catch {
      return problem(502, 'network_error', 'Gatehouse cannot be reached.');
    }

    const answerHeaders = new Headers();
    const type = upstream.headers.get('content-type');
    if (type) answerHeaders.set('content-type', type);
    const retryAfter = upstream.headers.get('retry-after');
    if (retryAfter) answerHeaders.set('retry-after', retryAfter);
    answerHeaders.set('cache-control', 'no-store');

    if (path === '/v1/auth/sign-out' && (upstream.ok || upstream.status === 401)) {
      clearCookies(answerHeaders, secure);
      return new Response(null, { status: 204, headers: answerHeaders });
    }
    if (path === '/v1/auth/refresh' && upstream.status === 401) clearCookies(answerHeaders, secure);
    if (!upstream.ok || !TOKEN_PATHS.has(path) || upstream.status === 204) {
      return new Response(upstream.status === 204 ? null : await upstream.arrayBuffer(), {
        status: upstream.status,
        headers: answerHeaders,
      });
    }
    const answer = (await upstream.json()) as Record<string, unknown>;
    // Sign-up and the required enrolment nest their tokens; the others are a tokens answer (or
    // the MFA step, untouched).
    const nested = path === '/v1/auth/sign-up' || path === '/v1/auth/mfa/enrol/totp/confirm';
    const tokens = (nested ? answer.tokens : answer) as Record<string, unknown> | undefined;
    if (tokens && typeof tokens.access_token === 'string') {
      setCookies(answerHeaders, tokens, secure);
      // The page may read the claims (the active organization, the expiry), not the token.
      tokens.access_token_claims = decodeJwtPayload(tokens.access_token as string);
      delete tokens.access_token;
      delete tokens.refresh_token;
    }
    answerHeaders.set('content-type', 'application/json');
    return new Response(JSON.stringify(answer), { status: upstream.status, headers: answerHeaders });
  };

  function setCookies(headers: Headers, tokens: Record<string, unknown>, secure: boolean) {
    const expiresIn = typeof tokens.expires_in === 'number' ? tokens.expires_in : 900;
    headers.append('set-cookie', serializeCookie(names.access, String(tokens.access_token), { maxAge: expiresIn, secure }));
    if (typeof tokens.refresh_token === 'string') {
      headers.append(
        'set-cookie',
        serializeCookie(names.refresh, tokens.refresh_token, { maxAge: options.refreshMaxAgeSeconds, secure }),
      );
    }
  }

  function clearCookies(headers: Headers, secure: boolean) {
    headers.append('set-cookie', serializeCookie(names.access, '', { maxAge: 0, secure }));
    headers.append('set-cookie', serializeCookie(names.refresh, '', { maxAge: 0, secure }));
  }

  async function refreshAndReturn(request: Request, url: URL, secure: boolean): Promise<Response> {
    const requested = url.searchParams.get('return_to') ?? '/';
    // Only a path of this site: never an open redirect.
    const returnTo = requested.startsWith('/') && !requested.startsWith('//') && !requested.includes('\\') ? requested : '/';
    const headers = new Headers({ location: returnTo, 'cache-control': 'no-store' });
    const refreshToken = refreshTokenFrom(request.headers, names);
    if (refreshToken) {
      const upstream = await options.fetch(`${base}/v1/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (upstream.ok) setCookies(headers, (await upstream.json()) as Record<string, unknown>, secure);
      else clearCookies(headers, secure);
    }
    return new Response(null, { status: 303, headers });
  }

  return { GET: handle, POST: handle, PATCH: handle, DELETE: handle };
}

function withRefreshToken(body: string, refreshToken: string | undefined): string {
  let parsed: Record<string, unknown> = {};
  try {
    const value: unknown = body ? JSON.parse(body) : {};
    if (value && typeof value === 'object') parsed = value as Record<string, unknown>;
  } catch {
    // Gatehouse answers the malformed body itself.
    return body;
  }
  if (refreshToken) parsed.refresh_token = refreshToken;
  return JSON.stringify(parsed);
}

export function problem(status: number, code: string, detail: string): Response {
  return new Response(JSON.stringify({ type: 'about:blank', title: detail, status, code, detail }), {
    status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store' },
  });
}
