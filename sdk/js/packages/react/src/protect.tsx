//! `<Protect>`: renders its children only for a signed-in user (and, when asked, one whose
//! active organization grants a permission or role). For hiding UI, not for security: the
//! server checks the token again.

import type { ReactNode } from 'react';
import { useAuth, useOrganization } from './context.js';

export interface ProtectProps {
  children?: ReactNode;
  /** Shown instead (default: nothing). */
  fallback?: ReactNode;
  /** Shown while the stored session is being checked (default: nothing). */
  loading?: ReactNode;
  /** A permission the active organization must grant, e.g. `org:update`. */
  permission?: string;
  /** A role the user must hold in the active organization, e.g. `admin`. */
  role?: string;
}

export function Protect({ children, fallback = null, loading = null, permission, role }: ProtectProps) {
  const { isLoaded, isSignedIn } = useAuth();
  const { organization } = useOrganization();
  if (!isLoaded) return <>{loading}</>;
  if (!isSignedIn) return <>{fallback}</>;
  if (permission && !organization?.org_permissions.includes(permission)) return <>{fallback}</>;
  if (role && organization?.org_role !== role) return <>{fallback}</>;
  return <>{children}</>;
}
