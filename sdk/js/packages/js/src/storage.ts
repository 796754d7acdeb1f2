//! Where the client keeps the session: in memory (the default: gone with the page), in
//! `localStorage` (opt-in: survives reloads, readable by any script on the origin), or nowhere
//! in JavaScript (`'cookie'`: the app's own route handlers keep the tokens in httpOnly cookies,
//! see `@gatehouse/nextjs`). Any object with `load`/`save` can stand in.

import type { Session } from './types.js';

/** A place for the session. `load` runs once, when the client is made. */
export interface TokenStorage {
  load(): Session | null;
  save(session: Session | null): void;
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
  return {
    load: () => {
      const text = store()?.getItem(key);
      if (!text) return null;
      try {
        const session = JSON.parse(text) as Session;
        return typeof session?.sessionId === 'string' ? session : null;
      } catch {
        return null;
      }
    },
    save: (session) => {
      const target = store();
      if (!target) return;
      if (session === null) target.removeItem(key);
      else target.setItem(key, JSON.stringify(session));
    },
  };
}
