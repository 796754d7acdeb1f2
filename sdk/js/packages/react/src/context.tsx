//! `GatehouseProvider` and the hooks: one `Gatehouse` client per app, its session mirrored into
//! React state through `onAuthStateChange`, so every hook re-renders on sign-in, sign-out,
//! refresh and organization switches.

import {
  Gatehouse,
  type ActiveOrganization,
  type GatehouseOptions,
  type Organization,
  type Session,
  type User,
} from '@gatehouse/js';
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

interface OrganizationList {
  /** The user the list belongs to (a sign-out or another user makes it stale). */
  userId: string | null;
  organizations: Organization[];
  isLoaded: boolean;
  error: Error | null;
}

interface GatehouseContextValue {
  client: Gatehouse;
  session: Session | null;
  /** False until the stored session (if any) has been checked with the server. */
  isLoaded: boolean;
  /** One list for every `useOrganization` below the provider, loaded on first use. */
  organizations: OrganizationList;
  reloadOrganizations: () => Promise<void>;
}

const GatehouseContext = createContext<GatehouseContextValue | null>(null);

export type GatehouseProviderProps = {
  children?: ReactNode;
} & ({ client: Gatehouse } | ({ client?: undefined } & GatehouseOptions));

/**
 * Makes a Gatehouse client available to the hooks and components below it. Give it a
 * `client`, or the options of one (`url`, `storage`, ...).
 */
export function GatehouseProvider(props: GatehouseProviderProps) {
  const { children } = props;
  const [client] = useState<Gatehouse>(() => props.client ?? new Gatehouse(props as GatehouseOptions));
  const [session, setSession] = useState<Session | null>(() => client.session);
  // Nothing to check without a stored session, except in cookie mode, where only the app's
  // server can tell whether the browser's cookies hold one.
  const [isLoaded, setLoaded] = useState(() => client.session === null && !client.cookieMode);

  useEffect(() => {
    const stop = client.onAuthStateChange((_event, next) => setSession(next));
    if (client.cookieMode && !client.session) {
      client
        .restoreSession()
        .catch(() => null)
        .finally(() => {
          setSession(client.session);
          setLoaded(true);
        });
    } else if (client.session) {
      // A stored session may have ended on the server since: ask once.
      client
        .getUser()
        .catch(() => null)
        .finally(() => {
          setSession(client.session);
          setLoaded(true);
        });
    }
    return stop;
  }, [client]);

  const [organizations, setOrganizations] = useState<OrganizationList>({
    userId: null,
    organizations: [],
    isLoaded: false,
    error: null,
  });
  const reloadOrganizations = useCallback(async () => {
    const userId = client.session?.user.id ?? null;
    if (!userId) {
      setOrganizations({ userId: null, organizations: [], isLoaded: true, error: null });
      return;
    }
    try {
      const page = await client.listOrganizations({ limit: 100 });
      setOrganizations({ userId, organizations: page.data, isLoaded: true, error: null });
    } catch (caught) {
      setOrganizations((previous) => ({ ...previous, userId, isLoaded: true, error: caught as Error }));
    }
  }, [client]);

  const value = useMemo(
    () => ({ client, session, isLoaded, organizations, reloadOrganizations }),
    [client, session, isLoaded, organizations, reloadOrganizations],
  );
  return <GatehouseContext.Provider value={value}>{children}</GatehouseContext.Provider>;
}

function useGatehouseContext(): GatehouseContextValue {
  const value = useContext(GatehouseContext);
  if (!value) throw new Error('Gatehouse hooks and components must be used inside <GatehouseProvider>');
  return value;
}

/** The client itself, for calls the hooks do not wrap. */
export function useGatehouse(): Gatehouse {
  return useGatehouseContext().client;
}

export interface AuthState {
  isLoaded: boolean;
  isSignedIn: boolean;
  userId: string | null;
  sessionId: string | null;
  /** A valid access token for your API (refreshed when needed), or null. */
  getToken: () => Promise<string | null>;
  signOut: () => Promise<void>;
}

export function useAuth(): AuthState {
  const { client, session, isLoaded } = useGatehouseContext();
  const getToken = useCallback(() => client.getAccessToken(), [client]);
  const signOut = useCallback(() => client.signOut(), [client]);
  return {
    isLoaded,
    isSignedIn: session !== null,
    userId: session?.user.id ?? null,
    sessionId: session?.sessionId ?? null,
    getToken,
    signOut,
  };
}

export interface UserState {
  isLoaded: boolean;
  isSignedIn: boolean;
  user: User | null;
}

export function useUser(): UserState {
  const { session, isLoaded } = useGatehouseContext();
  return { isLoaded, isSignedIn: session !== null, user: session?.user ?? null };
}

export interface OrganizationState {
  /** The session's active organization (from the access token's claims), or null. */
  organization: ActiveOrganization | null;
  /** The user's organizations; empty until loaded. */
  organizations: Organization[];
  isLoaded: boolean;
  error: Error | null;
  switchOrganization: (organizationId: string | null) => Promise<void>;
  reload: () => Promise<void>;
}

export function useOrganization(): OrganizationState {
  const { client, session, organizations: list, reloadOrganizations } = useGatehouseContext();
  const userId = session?.user.id ?? null;
  const stale = list.userId !== userId || !list.isLoaded;

  useEffect(() => {
    if (stale) void reloadOrganizations();
  }, [stale, reloadOrganizations]);

  const switchOrganization = useCallback(
    async (organizationId: string | null) => {
      await client.switchOrganization(organizationId);
    },
    [client],
  );

  // `session` in the dependencies: the claims change with every switch.
  const organization = useMemo(() => (session ? client.activeOrganization() : null), [client, session]);
  return {
    organization,
    organizations: stale ? [] : list.organizations,
    isLoaded: !stale,
    error: stale ? null : list.error,
    switchOrganization,
    reload: reloadOrganizations,
  };
}
