//! `@gatehouse/nextjs`: middleware that verifies the access token through the server's JWKS
//! and protects routes, server helpers `auth()` / `currentUser()`, and the cookie-mode route
//! handlers. Written against the web platform's `Request`/`Response` (what Next's middleware
//! and route handlers receive and may answer), so it needs nothing from `next` at run time
//! except `next/headers` when `auth()` is called without a request.

import type { User } from '@gatehouse/js';
import { cookieNames, refreshTokenFrom, tokenFrom, type TokenSource } from './cookies.js';
import { createHandlers, problem } from './handlers.js';
import { createVerifier, TokenError, type GatehouseClaims, type VerifierOptions } from './verify.js';

export { createVerifier, TokenError } from './verify.js';
export type { GatehouseClaims, TokenVerifier, VerifierOptions } from './verify.js';
export { readCookie, serializeCookie } from './cookies.js';

export interface GatehouseNextOptions extends VerifierOptions {
  /** Cookie names are `<prefix>_access` and `<prefix>_refresh` (default `gatehouse`). */
  cookiePrefix?: string;
  /** Where the route handlers are mounted (default `/api/gatehouse`). */
  handlersPath?: string;
  refreshMaxAgeSeconds?: number;
  fetch?: typeof fetch;
}

/** Who is asking: the verified claims, or nobody. */
export type Auth =
  | {
      userId: string;
      sessionId: string;
      orgId: string | null;
      orgRole: string | null;
      orgPermissions: string[];
      claims: GatehouseClaims;
      token: string;
      /** Does the active organization grant this permission / role? */
      has(check: { permission?: string; role?: string }): boolean;
    }
  | { userId: null; sessionId: null; orgId: null; orgRole: null; orgPermissions: []; claims: null; token: null; has(): false };

const SIGNED_OUT: Auth = {
  userId: null,
  sessionId: null,
  orgId: null,
  orgRole: null,
  orgPermissions: [],
  claims: null,
  token: null,
  has: () => false,
};

export type RouteMatcher = string | RegExp | ((pathname: string) => boolean);

export interface MiddlewareOptions {
  /** Routes that need a signed-in user; everything else passes (default: every route). */
  protect?: RouteMatcher[];
  /** Routes that never need one (checked first); the handlers path is always public. */
  publicRoutes?: RouteMatcher[];
  /** Where a signed-out page visit goes (with `?return_to=`); default `/sign-in`. */
  signInUrl?: string;
  /** Paths answered with 401 problem+json instead of a redirect (default: `/api/`). */
  apiRoutes?: RouteMatcher[];
}

function matches(pathname: string, matcher: RouteMatcher): boolean {
  if (typeof matcher === 'function') return matcher(pathname);
  if (matcher instanceof RegExp) return matcher.test(pathname);
  // "/dashboard" covers "/dashboard" and "/dashboard/...".
  return pathname === matcher || pathname.startsWith(matcher.endsWith('/') ? matcher : `${matcher}/`);
}

export function createGatehouse(options: GatehouseNextOptions) {
  const base = options.url.replace(/\/+$/, '');
  const names = cookieNames(options.cookiePrefix ?? 'gatehouse');
  const handlersPath = (options.handlersPath ?? '/api/gatehouse').replace(/\/+$/, '');
  const platformFetch = options.fetch ?? globalThis.fetch;
  const fetcher: typeof fetch = (input, init) => platformFetch(input, init);
  const verify = createVerifier(options);

  async function authFrom(source: TokenSource): Promise<Auth> {
    const token = tokenFrom(source, names);
    if (!token) return SIGNED_OUT;
    try {
      const claims = await verify(token);
      const permissions = claims.org_permissions ?? [];
      return {
        userId: claims.sub,
        sessionId: claims.sid,
        orgId: claims.org_id ?? null,
        orgRole: claims.org_role ?? null,
        orgPermissions: permissions,
        claims,
        token,
        has: (check) =>
          (check.permission === undefined || permissions.includes(check.permission)) &&
          (check.role === undefined || claims.org_role === check.role),
      };
    } catch (error) {
      if (error instanceof TokenError) return SIGNED_OUT;
      throw error;
    }
  }

  /**
   * The verified caller of a request (Bearer header or access cookie). Without an argument, in
   * a Server Component or route handler, it reads Next's request cookies (`next/headers`).
   */
  async function auth(source?: TokenSource): Promise<Auth> {
    if (source) return authFrom(source);
    // @ts-ignore -- `next` is an optional peer dependency, present in a Next.js app.
    const nextHeaders = (await import('next/headers')) as {
      headers(): Promise<Headers> | Headers;
      cookies(): Promise<{ get(name: string): { value: string } | undefined }>;
    };
    const headers = await nextHeaders.headers();
    if (headers.get('authorization')) return authFrom(headers);
    return authFrom(await nextHeaders.cookies());
  }

  /** The signed-in user from `GET /v1/me`, or `null`. */
  async function currentUser(source?: TokenSource): Promise<User | null> {
    const { token } = await auth(source);
    if (!token) return null;
    const response = await fetcher(`${base}/v1/me`, {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`Gatehouse /v1/me answered ${response.status}`);
    return (await response.json()) as User;
  }

  /**
   * Next.js middleware (`export default gatehouse.middleware({...})` in `middleware.ts`):
   * answers `undefined` to let a request through, a redirect to the sign-in page (or through
   * the refresh handler, when only the access cookie has expired) for a signed-out page
   * visit, or 401 problem+json for an API route.
   */
  function middleware(config: MiddlewareOptions = {}) {
    const signInUrl = config.signInUrl ?? '/sign-in';
    const publicRoutes = [handlersPath, signInUrl, ...(config.publicRoutes ?? [])];
    const apiRoutes = config.apiRoutes ?? ['/api'];
    return async (request: Request): Promise<Response | undefined> => {
      const url = new URL(request.url);
      const path = url.pathname;
      if (publicRoutes.some((matcher) => matches(path, matcher))) return undefined;
      if (config.protect && !config.protect.some((matcher) => matches(path, matcher))) return undefined;
      const caller = await authFrom(request);
      if (caller.userId) return undefined;
      if (apiRoutes.some((matcher) => matches(path, matcher))) {
        return problem(401, 'invalid_token', 'Sign in to use this API.');
      }
      const returnTo = `${path}${url.search}`;
      if (request.method === 'GET' && refreshTokenFrom(request.headers, names)) {
        const refresh = new URL(`${handlersPath}/refresh`, url);
        refresh.searchParams.set('return_to', returnTo);
        return Response.redirect(refresh, 307);
      }
      const signIn = new URL(signInUrl, url);
      signIn.searchParams.set('return_to', returnTo);
      return Response.redirect(signIn, 307);
    };
  }

  const handlers = createHandlers({
    url: base,
    names,
    refreshMaxAgeSeconds: options.refreshMaxAgeSeconds ?? 7 * 24 * 3600,
    fetch: fetcher,
  });

  return { auth, currentUser, middleware, handlers, verifyToken: verify, cookieNames: names };
}
