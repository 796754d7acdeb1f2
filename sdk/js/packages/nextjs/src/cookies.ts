//! The httpOnly cookies that hold the tokens in cookie mode, and reading tokens from requests.

export interface CookieNames {
  access: string;
  refresh: string;
}

export function cookieNames(prefix: string): CookieNames {
  return { access: `${prefix}_access`, refresh: `${prefix}_refresh` };
}

/** The value of cookie `name` in a `Cookie` header. */
export function readCookie(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index < 0) continue;
    if (part.slice(0, index).trim() === name) {
      try {
        return decodeURIComponent(part.slice(index + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export interface CookieOptions {
  maxAge: number;
  secure: boolean;
  path?: string;
}

/** A `Set-Cookie` value: httpOnly, SameSite=Lax (no cross-site POST carries it). */
export function serializeCookie(name: string, value: string, options: CookieOptions): string {
  const parts = [
    `${name}=${encodeURIComponent(value)}`,
    `Path=${options.path ?? '/'}`,
    `Max-Age=${Math.max(0, Math.floor(options.maxAge))}`,
    'HttpOnly',
    'SameSite=Lax',
  ];
  if (options.secure) parts.push('Secure');
  return parts.join('; ');
}

/** Anything a token can be read from: a `Request`, its `Headers`, or Next's cookie store. */
export type TokenSource =
  | Request
  | Headers
  | { get(name: string): { value: string } | undefined };

/** The access token of a request: `Authorization: Bearer`, else the access cookie. */
export function tokenFrom(source: TokenSource, names: CookieNames): string | undefined {
  const headers = source instanceof Request ? source.headers : source instanceof Headers ? source : undefined;
  if (headers) {
    const authorization = headers.get('authorization');
    if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim();
    return readCookie(headers.get('cookie'), names.access);
  }
  return (source as { get(name: string): { value: string } | undefined }).get(names.access)?.value;
}

export function refreshTokenFrom(headers: Headers, names: CookieNames): string | undefined {
  return readCookie(headers.get('cookie'), names.refresh);
}
