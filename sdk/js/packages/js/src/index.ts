//! `@gatehouse/js`: the Gatehouse client. No dependency beyond the platform (fetch, WebCrypto).

export { Gatehouse } from './client.js';
export type {
  AuthEvent,
  AuthStateListener,
  GatehouseOptions,
  MfaRequired,
  SignInParams,
  SignInResult,
  SignUpParams,
  SignUpResult,
  SignedIn,
  TotpEnrolment,
  VerifyMfaParams,
} from './client.js';
export { GatehouseError, isGatehouseError, errorFromResponse } from './errors.js';
export type { FieldProblem } from './errors.js';
export { decodeJwtPayload, base64UrlDecode, base64UrlEncode } from './jwt.js';
export { OidcClient, pkceChallenge, randomToken } from './oidc.js';
export type { OidcOptions, OidcTokens } from './oidc.js';
export { localStorageStorage, memoryStorage } from './storage.js';
export type { TokenStorage } from './storage.js';
export { passkeysSupported } from './webauthn.js';
export type * from './types.js';
