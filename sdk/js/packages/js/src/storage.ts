//! Where the client keeps the session: in memory (the default: gone with the page), in
//! `localStorage` (opt-in: survives reloads, readable by any script on the origin), or nowhere
//! in JavaScript (`'cookie'`: the app's own route handlers keep the tokens in httpOnly cookies,
//! see `@gatehouse/nextjs`). Any object with `load`/`save` can stand in.

import type { Session } from './types.js';

/** A place for the session. `load` runs when the client is made (and, for shared storage, before a refresh). */
export interface TokenStorage {
  load(): Session | null;
  save(session: Session | null): void;
  /**
   * Shared with other clients (other tabs): before refreshing, the client reads it again and
   * adopts a session another client already rotated, instead of spending the same refresh
   * token twice (which Gatehouse answers by revoking the session).
   */
  shared?: boolean;
  /** Tells the client when another client changed the stored session. */
  subscribe?(listener: (session: Session | null) => void): () => void;
}

/** The default: the session lives as long as the client object. */
export function memoryStorage(): TokenStorage {
  let current: Session | null = null;
  return {
    load: () => current,
    save: (session) => {
      current = session;
    },
  };
}

/**
 * `localStorage` under `key`: the session survives reloads and is shared by the origin's tabs.
 * Any script running on the origin can read it; prefer memory or cookies where XSS is a worry.
 */
export function localStorageStorage(key = 'gatehouse.session', storage?: Storage): TokenStorage {
  const store = (): Storage | undefined => storage ?? globalThis.localStorage;
  const parse = (text: string | null | undefined): Session | null => {
    if (!text) return null;
    try {
      const session = JSON.parse(text) as Session;
      return typeof session?.sessionId === 'string' ? session : null;
    } catch {
      return null;
    }
  };
  return {
    shared: true,
    load: () => parse(store()?.getItem(key)),
    subscribe: (listener) => {
      // The `storage` event fires in the other tabs of the origin, never in the writer.
      if (typeof globalThis.addEventListener !== 'function') return () => undefined;
      const onStorage = (event: StorageEvent) => {
        if (event.key === key || event.key === null) listener(parse(event.newValue));
      };
      globalThis.addEventListener('storage', onStorage);
      return () => globalThis.removeEventListener('storage', onStorage);
    },
    save: (session) => {
      const target = store();
      if (!target) return;
      if (session === null) target.removeItem(key);
      else target.setItem(key, JSON.stringify(session));
    },
  };
}
