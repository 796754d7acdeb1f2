//! OpenID Connect authorization code flow with PKCE (S256, RFC 7636) for browser apps: the
//! verifier, `state` and `nonce` come from WebCrypto, are parked in `sessionStorage` for the
//! round trip, and are checked when the browser comes back.

import { GatehouseError } from './errors.js';
import { base64UrlEncode, decodeJwtPayload } from './jwt.js';

export interface OidcOptions {
  /** The Gatehouse issuer, e.g. `https://id.example.com`. */
  issuer: string;
  /** A public client (`gatehouse client create --public ...`). */
  clientId: string;
  /** One of the client's registered redirect URIs. */
  redirectUri: string;
  /** Default `openid profile email`. */
  scope?: string;
  /** Where the flow's secrets wait for the redirect back (default `sessionStorage`). */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  fetch?: typeof fetch;
}

/** The token endpoint's answer, with the ID token's claims (nonce checked). */
export interface OidcTokens {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token?: string;
  id_token?: string;
  scope?: string;
  /** The ID token's payload. The token came straight from the issuer's token endpoint over
   * TLS, which OpenID Connect Core §3.1.3.7 accepts in place of checking its signature here. */
  claims?: Record<string, unknown>;
}

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
}

interface PendingFlow {
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
}

const STORAGE_PREFIX = 'gatehouse.oidc.';

/** 32 random bytes, base64url: a PKCE verifier (43 characters), a state or a nonce. */
export function randomToken(bytes = 32): string {
  return base64UrlEncode(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The S256 challenge of a PKCE verifier: base64url(SHA-256(verifier)). */
export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64UrlEncode(new Uint8Array(digest));
}

export class OidcClient {
  readonly #options: OidcOptions;
  readonly #fetch: typeof fetch;
  #discovery: Promise<Discovery> | null = null;

  constructor(options: OidcOptions) {
    this.#options = { ...options, issuer: options.issuer.replace(/\/+$/, '') };
    const platformFetch = options.fetch ?? globalThis.fetch;
    this.#fetch = (input, init) => platformFetch(input, init);
  }

  #storage(): Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> {
    const storage = this.#options.storage ?? globalThis.sessionStorage;
    if (!storage) throw new TypeError('OidcClient: no sessionStorage here; pass `storage`');
    return storage;
  }

  /** The issuer's discovery document (fetched once). */
  discover(): Promise<Discovery> {
    this.#discovery ??= (async () => {
      const response = await this.#fetch(`${this.#options.issuer}/.well-known/openid-configuration`);
      if (!response.ok) throw new GatehouseError({ code: 'oidc_discovery_failed', status: response.status });
      return (await response.json()) as Discovery;
    })();
    return this.#discovery;
  }

  /**
   * The authorization URL to send the browser to (`location.assign(url)`), with a fresh
   * `state`, `nonce` and PKCE S256 challenge; the secrets wait in storage under the state.
   */
  async authorizationUrl(extra: Record<string, string> = {}): Promise<string> {
    const discovery = await this.discover();
    const flow: PendingFlow = {
      state: randomToken(),
      nonce: randomToken(),
      verifier: randomToken(),
      redirectUri: this.#options.redirectUri,
    };
    this.#storage().setItem(STORAGE_PREFIX + flow.state, JSON.stringify(flow));
    const url = new URL(discovery.authorization_endpoint);
    const params = {
      ...extra,
      response_type: 'code',
      client_id: this.#options.clientId,
      redirect_uri: flow.redirectUri,
      scope: this.#options.scope ?? 'openid profile email',
      state: flow.state,
      nonce: flow.nonce,
      code_challenge: await pkceChallenge(flow.verifier),
      code_challenge_method: 'S256',
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url.toString();
  }

  /**
   * Finishes the flow on the redirect URI's page: checks `state` (one use), exchanges the code
   * with the verifier, checks the ID token's `nonce`, `iss` and `aud`.
   */
  async handleRedirect(callbackUrl: string = globalThis.location?.href ?? ''): Promise<OidcTokens> {
    const url = new URL(callbackUrl);
    const state = url.searchParams.get('state') ?? '';
    const stored = state ? this.#storage().getItem(STORAGE_PREFIX + state) : null;
    if (!stored) {
      throw new GatehouseError({ code: 'oidc_state_mismatch', status: 0, detail: 'Unknown or reused state.' });
    }
    this.#storage().removeItem(STORAGE_PREFIX + state);
    const flow = JSON.parse(stored) as PendingFlow;
    const error = url.searchParams.get('error');
    if (error) {
      throw new GatehouseError({ code: error, status: 0, detail: url.searchParams.get('error_description') ?? undefined });
    }
    const code = url.searchParams.get('code');
    if (!code) throw new GatehouseError({ code: 'oidc_code_missing', status: 0 });
    const discovery = await this.discover();
    const response = await this.#fetch(discovery.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: flow.redirectUri,
        client_id: this.#options.clientId,
        code_verifier: flow.verifier,
      }),
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      throw new GatehouseError({
        code: typeof body.error === 'string' ? body.error : `http_${response.status}`,
        status: response.status,
        detail: typeof body.error_description === 'string' ? body.error_description : undefined,
      });
    }
    const tokens = body as unknown as OidcTokens;
    if (tokens.id_token) {
      const claims = decodeJwtPayload(tokens.id_token);
      const audience = claims?.aud;
      const audiences = Array.isArray(audience) ? audience : [audience];
      if (
        !claims ||
        claims.nonce !== flow.nonce ||
        claims.iss !== discovery.issuer ||
        !audiences.includes(this.#options.clientId)
      ) {
        throw new GatehouseError({ code: 'oidc_id_token_invalid', status: 0, detail: 'nonce, iss or aud mismatch' });
      }
      tokens.claims = claims;
    }
    return tokens;
  }
}
