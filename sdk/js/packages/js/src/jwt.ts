//! Reading a JWT's payload without verifying it: for showing the active organization or the
//! expiry in a UI. Authorization decisions verify the signature (`@gatehouse/nextjs` does,
//! through the server's JWKS).

/** Decodes base64url (no padding needed) into bytes. */
export function base64UrlDecode(text: string): Uint8Array {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** Encodes bytes as base64url without padding. */
export function base64UrlEncode(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The payload of a compact JWS, or `null` when `token` is not one. Not verified. */
export function decodeJwtPayload<T = Record<string, unknown>>(token: string): T | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return null;
  try {
    const json = new TextDecoder().decode(base64UrlDecode(parts[1]));
    const payload: unknown = JSON.parse(json);
    return payload !== null && typeof payload === 'object' ? (payload as T) : null;
  } catch {
    return null;
  }
}
