//! The wire shapes of Gatehouse's first-party API (snake_case, as the server sends them).

/** A user as `/v1/me` and the tokens answer carry it. */
export interface User {
  id: string;
  email: string | null;
  email_verified: boolean;
  username: string | null;
  first_name: string | null;
  last_name: string | null;
  image_url: string | null;
  public_metadata: Record<string, unknown>;
  has_password: boolean;
  last_sign_in_at: number | null;
  created_at: number;
  updated_at: number;
}

/** The tokens answer (`/v1/auth/sign-in`, `/refresh`, `/mfa/verify`, ...). */
export interface TokensResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  session_id: string;
  user: User;
}

/** The sign-in answer when a second factor is needed. */
export interface MfaRequiredResponse {
  mfa_required: true;
  mfa_token: string;
  methods: MfaMethod[];
  expires_in: number;
  enrolment_required: boolean;
}

export type MfaMethod = 'totp' | 'backup_code' | 'email' | 'sms';

/** An organization the signed-in user belongs to, with their role and permissions in it. */
export interface Organization {
  id: string;
  name: string;
  slug: string;
  logo_url: string | null;
  public_metadata: Record<string, unknown>;
  role?: string;
  permissions?: string[];
  created_at: number;
  updated_at: number;
}

/** The organization claims of an access token. */
export interface ActiveOrganization {
  org_id: string;
  org_slug: string;
  org_role: string;
  org_permissions: string[];
}

/** A cursor-paginated list. */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/** A registered passkey (`GET /v1/me/passkeys`). */
export interface Passkey {
  id: string;
  name: string;
  credential_id: string;
  created_at: number;
  last_used_at: number | null;
  synced: boolean;
  backup_eligible: boolean;
  backup_state: boolean;
  transports: string[];
  aaguid: string | null;
  flagged_at: number | null;
}

/** What the client keeps about the signed-in session. */
export interface Session {
  /** Absent in cookie mode: the app's route handlers hold the tokens in httpOnly cookies. */
  accessToken?: string;
  /** Absent in cookie mode. */
  refreshToken?: string;
  /** Milliseconds since the epoch at which the access token expires. */
  expiresAt: number;
  sessionId: string;
  user: User;
  /** Cookie mode: the access token's claims, sent by the route handlers in its place. */
  claims?: AccessTokenClaims;
}

/** The claims of a Gatehouse access token (decoded, not verified: for display only). */
export interface AccessTokenClaims extends Partial<ActiveOrganization> {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  sid: string;
  scope?: string;
  amr?: string[];
  auth_time?: number;
  [claim: string]: unknown;
}
