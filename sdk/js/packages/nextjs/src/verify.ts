//! Verifying Gatehouse access tokens on the server (Node or the edge runtime) against the
//! issuer's JWKS: `jose` does the JOSE work over WebCrypto; its remote key set is cached and
//! fetched again when a token names an unknown `kid` (a signing-key rotation), at most once per
//! cooldown, so forged `kid`s cannot make us hammer the server.

import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWTPayload } from 'jose';

export interface VerifierOptions {
  /** The Gatehouse server URL, e.g. `https://id.example.com`. */
  url: string;
  /** Expected `iss` (default: `url`). */
  issuer?: string;
  /** Expected `aud` (default: the issuer, Gatehouse's default audience). */
  audience?: string | string[];
  /** Accepted algorithms (default RS256, ES256, EdDSA: what Gatehouse signs with). */
  algorithms?: string[];
  /** Leeway for `exp`/`nbf`, seconds (default 5). */
  clockToleranceSeconds?: number;
  /**
   * Minimum seconds between two JWKS fetches caused by unknown `kid`s (default 10). Gatehouse
   * signs with a new key as soon as it is rotated, so a token of the new key that arrives
   * within this time of the last fetch is refused; shorter costs more fetches under forged kids.
   */
  jwksCooldownSeconds?: number;
  /** How long a fetched key set is trusted before it is fetched again, seconds (default 600). */
  jwksMaxAgeSeconds?: number;
  /** The `fetch` used for the JWKS (default: the global one). */
  fetch?: typeof fetch;
}

/** The verified claims of a Gatehouse access token. */
export interface GatehouseClaims extends JWTPayload {
  sub: string;
  sid: string;
  scope?: string;
  amr?: string[];
  org_id?: string;
  org_slug?: string;
  org_role?: string;
  org_permissions?: string[];
}

/** Why a token was refused: `token_missing`, `token_expired`, `token_invalid`. */
export class TokenError extends Error {
  constructor(
    readonly code: 'token_missing' | 'token_expired' | 'token_invalid',
    message: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

export type TokenVerifier = (token: string) => Promise<GatehouseClaims>;

export function createVerifier(options: VerifierOptions): TokenVerifier {
  const base = options.url.replace(/\/+$/, '');
  const issuer = options.issuer ?? base;
  const keys = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`), {
    cooldownDuration: (options.jwksCooldownSeconds ?? 10) * 1000,
    cacheMaxAge: (options.jwksMaxAgeSeconds ?? 600) * 1000,
    ...(options.fetch ? { [customFetch]: options.fetch } : {}),
  });
  return async (token) => {
    if (!token) throw new TokenError('token_missing', 'no access token');
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer,
        audience: options.audience ?? issuer,
        algorithms: options.algorithms ?? ['RS256', 'ES256', 'EdDSA'],
        typ: 'at+jwt',
        clockTolerance: options.clockToleranceSeconds ?? 5,
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') {
        throw new TokenError('token_invalid', 'not a Gatehouse access token (sub, sid)');
      }
      return payload as GatehouseClaims;
    } catch (error) {
      if (error instanceof TokenError) throw error;
      if (error instanceof errors.JWTExpired) throw new TokenError('token_expired', error.message);
      throw new TokenError('token_invalid', (error as Error).message);
    }
  };
}
