//! `Gatehouse`: the client of the first-party API. It keeps the session in a `TokenStorage`,
//! refreshes the access token before it expires (one network refresh however many callers ask
//! at once: the server rotates refresh tokens and treats a second use as theft), and tells
//! listeners when the user signs in, out, or the session changes.

import { GatehouseError, errorFromResponse } from './errors.js';
import { decodeJwtPayload } from './jwt.js';
import { type TokenStorage, localStorageStorage, memoryStorage } from './storage.js';
import type {
  AccessTokenClaims,
  ActiveOrganization,
  MfaMethod,
  MfaRequiredResponse,
  Organization,
  Page,
  Passkey,
  Session,
  TokensResponse,
  User,
} from './types.js';
import { createCredential, getCredential } from './webauthn.js';

export interface GatehouseOptions {
  /**
   * The Gatehouse server, e.g. `https://id.example.com`. In cookie mode: where the app's own
   * route handlers answer the same `/v1/...` paths (e.g. `/api/gatehouse`, same origin).
   */
  url: string;
  /**
   * `'memory'` (default), `'localStorage'` (opt-in), `'cookie'` (tokens in httpOnly cookies
   * set by the app's route handlers, never seen by JavaScript), or your own `TokenStorage`.
   */
  storage?: 'memory' | 'localStorage' | 'cookie' | TokenStorage;
  /** The `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** Refresh when the access token has fewer seconds than this left (default 30). */
  refreshMarginSeconds?: number;
}

export type AuthEvent =
  | 'SIGNED_IN'
  | 'SIGNED_OUT'
  | 'TOKEN_REFRESHED'
  | 'USER_UPDATED'
  | 'ORGANIZATION_SWITCHED';

export type AuthStateListener = (event: AuthEvent, session: Session | null) => void;

/** Signed in: the session is stored and listeners were told. */
export interface SignedIn {
  status: 'signed_in';
  user: User;
  session: Session;
}

/** The password (or passkey, or magic link) was right; a second factor is needed. */
export interface MfaRequired {
  status: 'mfa_required';
  /** Give it to `verifyMfa` (or, when `enrolmentRequired`, to the enrolment calls). */
  mfaToken: string;
  /** What this user can answer with. */
  methods: MfaMethod[];
  /** Seconds the `mfaToken` lives. */
  expiresIn: number;
  /** MFA is required and the user has no factor yet. */
  enrolmentRequired: boolean;
}

export type SignInResult = SignedIn | MfaRequired;

/**
 * Sign-up done and signed in; or an email is on its way (verification required: the same
 * answer for every address); or the account exists but must sign in first (MFA required by
 * the server's policy: `signIn` then leads to the enrolment).
 */
export type SignUpResult =
  | SignedIn
  | { status: 'verification_required' }
  | { status: 'sign_in_required'; user: User };

/** A required MFA enrolment begun during sign-in: show `qr_svg` or `secret` to the user. */
export interface TotpEnrolment {
  secret: string;
  otpauth_uri: string;
  /** SVG markup of the QR code (show it as an image: `data:image/svg+xml,...`). */
  qr_svg: string;
}

export interface SignUpParams {
  email: string;
  password: string;
  username?: string;
  first_name?: string;
  last_name?: string;
}

export type SignInParams = { password: string } & ({ email: string } | { username: string });

export interface VerifyMfaParams {
  mfaToken: string;
  method: MfaMethod;
  code: string;
  /** Skip the second factor on this browser for a while (an httpOnly cookie set by Gatehouse). */
  trustDevice?: boolean;
}

interface SwitchResponse extends Omit<TokensResponse, 'refresh_token'> {
  refresh_token?: string;
  organization: ActiveOrganization | null;
}

/** Fields the cookie-mode route handlers answer instead of the tokens. */
type CookieTokens = Omit<TokensResponse, 'access_token' | 'refresh_token'> & {
  access_token?: string;
  refresh_token?: string;
  access_token_claims?: AccessTokenClaims;
};

export class Gatehouse {
  readonly url: string;
  readonly cookieMode: boolean;
  readonly #storage: TokenStorage;
  readonly #fetch: typeof fetch;
  readonly #marginMs: number;
  readonly #listeners = new Set<AuthStateListener>();
  #session: Session | null;
  #refreshing: Promise<Session> | null = null;

  constructor(options: GatehouseOptions) {
    if (!options?.url) throw new TypeError('new Gatehouse({ url }): url is required');
    this.url = options.url.replace(/\/+$/, '');
    const storage = options.storage ?? 'memory';
    this.cookieMode = storage === 'cookie';
    this.#storage =
      storage === 'memory' || storage === 'cookie'
        ? memoryStorage()
        : storage === 'localStorage'
          ? localStorageStorage()
          : storage;
    const platformFetch = options.fetch ?? globalThis.fetch;
    // Called unbound, `window.fetch` throws "Illegal invocation".
    this.#fetch = (input, init) => platformFetch(input, init);
    this.#marginMs = (options.refreshMarginSeconds ?? 30) * 1000;
    this.#session = this.#storage.load();
    this.#storage.subscribe?.((session) => {
      const event: AuthEvent =
        session === null ? 'SIGNED_OUT' : this.#session?.sessionId === session.sessionId ? 'TOKEN_REFRESHED' : 'SIGNED_IN';
      this.#session = session;
      this.#tell(event, session);
    });
  }

  // --- state -------------------------------------------------------------------------------

  /** The stored session, or `null` when signed out. */
  get session(): Session | null {
    return this.#session;
  }

  /** The signed-in user as last seen, or `null`. `getUser()` asks the server. */
  get user(): User | null {
    return this.#session?.user ?? null;
  }

  get isSignedIn(): boolean {
    return this.#session !== null;
  }

  /**
   * Calls `listener` on every change of the session; answers the function that stops it.
   * `SIGNED_IN`, `SIGNED_OUT` (also when the server ends the session), `TOKEN_REFRESHED`,
   * `USER_UPDATED`, `ORGANIZATION_SWITCHED`.
   */
  onAuthStateChange(listener: AuthStateListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The access token's claims, decoded but not verified (for display), or `null`. */
  claims(): AccessTokenClaims | null {
    const token = this.#session?.accessToken;
    if (token) return decodeJwtPayload<AccessTokenClaims>(token);
    return this.#session?.claims ?? null;
  }

  /** The active organization's claims from the access token, or `null`. */
  activeOrganization(): ActiveOrganization | null {
    const claims = this.claims();
    if (!claims?.org_id) return null;
    return {
      org_id: claims.org_id,
      org_slug: claims.org_slug ?? '',
      org_role: claims.org_role ?? '',
      org_permissions: claims.org_permissions ?? [],
    };
  }

  /**
   * Cookie mode: asks the app's route handlers whether this browser's cookies hold a session
   * (a refresh through the refresh cookie) and stores it; call it once when the page loads.
   * Other modes answer the stored session (nothing to ask).
   */
  async restoreSession(): Promise<Session | null> {
    if (!this.cookieMode || this.#session) return this.#session;
    try {
      const tokens = await this.#send<CookieTokens>('POST', '/v1/auth/refresh', {});
      const session = sessionFrom(tokens);
      this.#setSession(session, 'SIGNED_IN');
      return session;
    } catch (error) {
      if (error instanceof GatehouseError && error.status >= 400 && error.status < 500) return null;
      throw error;
    }
  }

  // --- sign-up and sign-in -----------------------------------------------------------------

  /** `POST /v1/auth/sign-up`. */
  async signUp(params: SignUpParams): Promise<SignUpResult> {
    const answer = await this.#send<{ user: User; tokens?: TokensResponse; verification_required?: true }>(
      'POST',
      '/v1/auth/sign-up',
      params,
    );
    if (answer?.tokens) return this.#signedIn(answer.tokens);
    if (answer?.user) return { status: 'sign_in_required', user: answer.user };
    return { status: 'verification_required' };
  }

  /** `POST /v1/auth/sign-in` with email or username and password. */
  async signIn(params: SignInParams): Promise<SignInResult> {
    return this.#signInAnswer(await this.#send('POST', '/v1/auth/sign-in', params));
  }

  /** `POST /v1/auth/mfa/verify`: the second step after `signIn` answered `mfa_required`. */
  async verifyMfa(params: VerifyMfaParams): Promise<SignedIn> {
    const tokens = await this.#send<TokensResponse>('POST', '/v1/auth/mfa/verify', {
      mfa_token: params.mfaToken,
      method: params.method,
      code: params.code,
      trust_device: params.trustDevice ?? false,
    });
    return this.#signedIn(tokens);
  }

  /**
   * `POST /v1/auth/mfa/enrol/totp`: when `signIn` answered `mfa_required` with
   * `enrolmentRequired` (the server requires MFA and the user has none), starts enrolling an
   * authenticator app with the sign-in's `mfaToken`.
   */
  async beginRequiredTotpEnrolment(mfaToken: string): Promise<TotpEnrolment> {
    return this.#send('POST', '/v1/auth/mfa/enrol/totp', { mfa_token: mfaToken });
  }

  /**
   * `POST /v1/auth/mfa/enrol/totp/confirm`: a first code completes the enrolment and the
   * sign-in, and answers the backup codes (shown once). With `holdSession` the session is
   * stored only when `complete()` is called, so a UI can show the codes before the signed-in
   * app replaces it.
   */
  async confirmRequiredTotpEnrolment(
    mfaToken: string,
    code: string,
    options: { holdSession?: boolean } = {},
  ): Promise<{ backupCodes: string[]; user: User; complete(): SignedIn }> {
    const answer = await this.#send<{ backup_codes: string[]; tokens: TokensResponse }>(
      'POST',
      '/v1/auth/mfa/enrol/totp/confirm',
      { mfa_token: mfaToken, code },
    );
    let signedIn: SignedIn | null = options.holdSession ? null : this.#signedIn(answer.tokens);
    return {
      backupCodes: answer.backup_codes,
      user: answer.tokens.user,
      complete: () => (signedIn ??= this.#signedIn(answer.tokens)),
    };
  }

  /** `POST /v1/auth/mfa/send-code`: a one-time code by `email` or `sms` for `verifyMfa`. */
  async sendMfaCode(mfaToken: string, method: 'email' | 'sms'): Promise<void> {
    await this.#send('POST', '/v1/auth/mfa/send-code', { mfa_token: mfaToken, method });
  }

  /** `POST /v1/auth/magic-link`: answers the same whether the address has an account or not. */
  async sendMagicLink(email: string, options: { returnTo?: string } = {}): Promise<void> {
    await this.#send('POST', '/v1/auth/magic-link', {
      email,
      ...(options.returnTo ? { return_to: options.returnTo } : {}),
    });
  }

  /** `POST /v1/auth/magic-link/verify` with the token from the emailed link. */
  async verifyMagicLink(token: string): Promise<SignInResult> {
    return this.#signInAnswer(await this.#send('POST', '/v1/auth/magic-link/verify', { token }));
  }

  /** `POST /v1/auth/email/verify` with the token from the verification email. */
  async verifyEmail(token: string): Promise<void> {
    await this.#send('POST', '/v1/auth/email/verify', { token });
  }

  /** `POST /v1/auth/password/forgot`: answers the same whether the address has an account or not. */
  async forgotPassword(email: string): Promise<void> {
    await this.#send('POST', '/v1/auth/password/forgot', { email });
  }

  /** `POST /v1/auth/password/reset` with the token from the reset email; every session ends. */
  async resetPassword(token: string, newPassword: string): Promise<void> {
    await this.#send('POST', '/v1/auth/password/reset', { token, new_password: newPassword });
  }

  /**
   * Signs in with a passkey (WebAuthn, in a browser). Without `email` any discoverable passkey
   * of the site will do. `mediation: 'conditional'` for autofill.
   */
  async signInWithPasskey(
    options: { email?: string; mediation?: CredentialMediationRequirement; signal?: AbortSignal } = {},
  ): Promise<SignInResult> {
    const begin = await this.#send<CeremonyResponse>(
      'POST',
      '/v1/auth/passkey/begin',
      options.email ? { email: options.email } : {},
    );
    const credential = await getCredential(begin.options.publicKey, options.mediation, options.signal);
    const answer = await this.#send<TokensResponse | MfaRequiredResponse>('POST', '/v1/auth/passkey/finish', {
      ceremony_id: begin.ceremony_id,
      credential,
    });
    return this.#signInAnswer(answer);
  }

  /** Registers a passkey for the signed-in user (WebAuthn, in a browser). */
  async registerPasskey(options: { name?: string; signal?: AbortSignal } = {}): Promise<Passkey> {
    const begin = await this.#authed<CeremonyResponse>('POST', '/v1/me/passkeys/register/begin');
    const credential = await createCredential(begin.options.publicKey, options.signal);
    return this.#authed<Passkey>('POST', '/v1/me/passkeys/register/finish', {
      ceremony_id: begin.ceremony_id,
      credential,
      ...(options.name ? { name: options.name } : {}),
    });
  }

  /** `GET /v1/me/passkeys`. */
  async listPasskeys(): Promise<Passkey[]> {
    return (await this.#authed<Page<Passkey>>('GET', '/v1/me/passkeys')).data;
  }

  /**
   * Ends the session on the server and forgets it here. The local session is cleared even when
   * the server cannot be reached (the error is then thrown after clearing).
   */
  async signOut(): Promise<void> {
    if (!this.#session) return;
    let failure: unknown;
    try {
      await this.#authed('POST', '/v1/auth/sign-out');
    } catch (error) {
      // A session the server already ended is signed out all the same.
      if (!(error instanceof GatehouseError && error.status === 401)) failure = error;
    }
    this.#setSession(null, 'SIGNED_OUT');
    if (failure !== undefined) throw failure;
  }

  // --- the signed-in user ------------------------------------------------------------------

  /** `GET /v1/me`: the user as the server has it now, or `null` when signed out. */
  async getUser(): Promise<User | null> {
    if (!this.#session) return null;
    try {
      const user = await this.#authed<User>('GET', '/v1/me');
      if (this.#session) this.#setSession({ ...this.#session, user }, 'USER_UPDATED');
      return user;
    } catch (error) {
      if (error instanceof GatehouseError && error.status === 401) return null;
      throw error;
    }
  }

  /** `PATCH /v1/me` with profile fields. */
  async updateUser(fields: Partial<Pick<User, 'first_name' | 'last_name' | 'username' | 'image_url'>>): Promise<User> {
    const user = await this.#authed<User>('PATCH', '/v1/me', fields);
    if (this.#session) this.#setSession({ ...this.#session, user }, 'USER_UPDATED');
    return user;
  }

  /**
   * A valid access token (refreshed first when it expires within the margin), or `null` when
   * signed out. Always `null` in cookie mode, where JavaScript never holds tokens.
   */
  async getAccessToken(): Promise<string | null> {
    const session = this.#session;
    if (!session?.accessToken) return null;
    if (session.expiresAt - Date.now() > this.#marginMs) return session.accessToken;
    return (await this.refresh()).accessToken ?? null;
  }

  /**
   * `POST /v1/auth/refresh`. Callers that ask while a refresh is under way share it: one network
   * request, one rotation of the refresh token, one new access token for all of them. A refused
   * refresh (`invalid_grant`: spent, revoked or expired) signs the client out.
   */
  refresh(): Promise<Session> {
    this.#refreshing ??= this.#refreshOnce().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #refreshOnce(): Promise<Session> {
    // Shared storage (other tabs): one refresh at a time across them, where the browser has
    // Web Locks; each one first looks whether another already rotated the token.
    const locks = (globalThis.navigator as { locks?: LockManager } | undefined)?.locks;
    if (this.#storage.shared && locks) return locks.request('gatehouse.refresh', () => this.#refreshShared());
    return this.#storage.shared ? this.#refreshShared() : this.#refreshNetwork();
  }

  async #refreshShared(): Promise<Session> {
    const mine = this.#session;
    const stored = this.#storage.load();
    if (mine && stored?.sessionId === mine.sessionId && stored.refreshToken && stored.refreshToken !== mine.refreshToken) {
      // Another client rotated the token: ours is spent (using it would revoke the session).
      this.#setSession(stored, 'TOKEN_REFRESHED');
      if (stored.expiresAt - Date.now() > this.#marginMs) return stored;
    }
    return this.#refreshNetwork();
  }

  async #refreshNetwork(): Promise<Session> {
    const session = this.#session;
    if (!session) throw notSignedIn();
    if (!this.cookieMode && !session.refreshToken) throw notSignedIn();
    try {
      const tokens = await this.#send<TokensResponse | CookieTokens>(
        'POST',
        '/v1/auth/refresh',
        this.cookieMode ? {} : { refresh_token: session.refreshToken },
      );
      const next = sessionFrom(tokens);
      this.#setSession(next, 'TOKEN_REFRESHED');
      return next;
    } catch (error) {
      if (error instanceof GatehouseError && (error.status === 401 || error.status === 400)) {
        this.#setSession(null, 'SIGNED_OUT');
      }
      throw error;
    }
  }

  /** `POST /v1/me/mfa/totp`: starts enrolling an authenticator app (shows `secret`/`qr_svg`). */
  async beginTotpEnrolment(): Promise<{ secret: string; otpauth_uri: string; qr_svg: string }> {
    return this.#authed('POST', '/v1/me/mfa/totp');
  }

  /** `POST /v1/me/mfa/totp/confirm` with a first code; answers the backup codes (shown once). */
  async confirmTotpEnrolment(code: string): Promise<{ backup_codes: string[] }> {
    return this.#authed('POST', '/v1/me/mfa/totp/confirm', { code });
  }

  // --- organizations -----------------------------------------------------------------------

  /** `GET /v1/organizations`: the user's organizations with their role in each. */
  async listOrganizations(options: { limit?: number; cursor?: string } = {}): Promise<Page<Organization>> {
    const query = new URLSearchParams();
    if (options.limit) query.set('limit', String(options.limit));
    if (options.cursor) query.set('cursor', options.cursor);
    const suffix = query.size > 0 ? `?${query}` : '';
    return this.#authed<Page<Organization>>('GET', `/v1/organizations${suffix}`);
  }

  /** `POST /v1/organizations`: the user becomes its owner. */
  async createOrganization(params: { name: string; slug: string; logo_url?: string }): Promise<Organization> {
    return this.#authed<Organization>('POST', '/v1/organizations', params);
  }

  /**
   * `POST /v1/me/organization`: makes `organizationId` (or none, with `null`) the session's
   * active organization. The refresh token is rotated in the same call, so the stored session
   * (access and refresh token) carries the new organization's claims.
   */
  async switchOrganization(organizationId: string | null): Promise<ActiveOrganization | null> {
    // A refresh under way must land first: the switch spends the refresh token it would rotate.
    if (this.#refreshing) await this.#refreshing.catch(() => undefined);
    const session = this.#session;
    if (!session) throw notSignedIn();
    const answer = await this.#authed<SwitchResponse>('POST', '/v1/me/organization', {
      organization_id: organizationId,
      ...(session.refreshToken ? { refresh_token: session.refreshToken } : {}),
    });
    const next = sessionFrom({ ...answer, refresh_token: answer.refresh_token ?? session.refreshToken });
    this.#setSession(next, 'ORGANIZATION_SWITCHED');
    return answer.organization;
  }

  // --- requests ----------------------------------------------------------------------------

  /**
   * `fetch` with the session's bearer token (refreshed when needed; on a 401 the token is
   * refreshed once and the request retried). For your own APIs that accept Gatehouse tokens.
   */
  async fetchWithAuth(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const attempt = async (token: string | null): Promise<Response> => {
      const headers = new Headers(init.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      return this.#fetch(input, {
        ...init,
        headers,
        ...(this.cookieMode ? { credentials: init.credentials ?? 'include' } : {}),
      });
    };
    const response = await attempt(await this.getAccessToken());
    if (response.status !== 401 || !this.#session?.refreshToken) return response;
    const refreshed = await this.refresh();
    return attempt(refreshed.accessToken ?? null);
  }

  /** An authenticated call to Gatehouse's own API (`/v1/...`), answered as JSON. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.#authed<T>(method, path, body);
  }

  async #authed<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.#session) throw notSignedIn();
    const token = await this.getAccessToken();
    try {
      return await this.#send<T>(method, path, body, token);
    } catch (error) {
      // An access token the server no longer takes (expired early, clock skew): refresh once.
      if (error instanceof GatehouseError && error.code === 'invalid_token' && this.#canRefresh()) {
        const refreshed = await this.refresh();
        return this.#send<T>(method, path, body, refreshed.accessToken ?? null);
      }
      throw error;
    }
  }

  #canRefresh(): boolean {
    return this.cookieMode ? this.#session !== null : Boolean(this.#session?.refreshToken);
  }

  async #send<T>(method: string, path: string, body?: unknown, token?: string | null): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    let response: Response;
    try {
      response = await this.#fetch(`${this.url}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        // Cookie mode: the route handlers' httpOnly cookies; otherwise Gatehouse's own
        // trusted-device cookie only travels to a same-site server.
        credentials: this.cookieMode ? 'include' : 'same-origin',
      });
    } catch (cause) {
      throw new GatehouseError({
        code: 'network_error',
        status: 0,
        detail: `Gatehouse at ${this.url} could not be reached`,
        cause,
      });
    }
    if (!response.ok) throw await errorFromResponse(response);
    // 202 may carry a body (sign-up with verification required) or none (magic link).
    const text = response.status === 204 ? '' : await response.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new GatehouseError({ code: 'invalid_response', status: response.status, detail: 'Gatehouse answered something other than JSON', cause });
    }
  }

  #signInAnswer(answer: TokensResponse | MfaRequiredResponse | CookieTokens): SignInResult {
    if ('mfa_required' in answer && answer.mfa_required) {
      return {
        status: 'mfa_required',
        mfaToken: answer.mfa_token,
        methods: answer.methods,
        expiresIn: answer.expires_in,
        enrolmentRequired: answer.enrolment_required,
      };
    }
    return this.#signedIn(answer as TokensResponse | CookieTokens);
  }

  #signedIn(tokens: TokensResponse | CookieTokens): SignedIn {
    const session = sessionFrom(tokens);
    this.#setSession(session, 'SIGNED_IN');
    return { status: 'signed_in', user: session.user, session };
  }

  #setSession(session: Session | null, event: AuthEvent): void {
    this.#session = session;
    this.#storage.save(session);
    this.#tell(event, session);
  }

  #tell(event: AuthEvent, session: Session | null): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event, session);
      } catch (error) {
        // One listener's bug must not stop the others, nor the sign-in that told them.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

interface CeremonyResponse {
  ceremony_id: string;
  options: { publicKey: Record<string, unknown> };
}

function sessionFrom(tokens: TokensResponse | CookieTokens): Session {
  const session: Session = {
    expiresAt: Date.now() + tokens.expires_in * 1000,
    sessionId: tokens.session_id,
    user: tokens.user,
  };
  if (tokens.access_token) session.accessToken = tokens.access_token;
  if (tokens.refresh_token) session.refreshToken = tokens.refresh_token;
  if ('access_token_claims' in tokens && tokens.access_token_claims) session.claims = tokens.access_token_claims;
  return session;
}

function notSignedIn(): GatehouseError {
  return new GatehouseError({ code: 'not_signed_in', status: 0, detail: 'No one is signed in.' });
}
