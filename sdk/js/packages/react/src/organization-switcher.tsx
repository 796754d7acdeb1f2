//! `<OrganizationSwitcher>`: a labelled native `<select>` of the user's organizations (the most
//! accessible picker there is: keyboard, screen readers and phones know it); choosing one makes
//! it the session's active organization.

import { useId, useState } from 'react';
import { useOrganization, useUser } from './context.js';
import { messageFor } from './messages.js';

export interface OrganizationSwitcherProps {
  label?: string;
  /** The choice for no active organization (default "Personal account"); `null` hides it. */
  personalLabel?: string | null;
  onSwitched?: (organizationId: string | null) => void;
}

export function OrganizationSwitcher({
  label = 'Organization',
  personalLabel = 'Personal account',
  onSwitched,
}: OrganizationSwitcherProps) {
  const { isSignedIn } = useUser();
  const { organization, organizations, isLoaded, switchOrganization } = useOrganization();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const id = useId();
  if (!isSignedIn) return null;

  async function choose(value: string) {
    const next = value === '' ? null : value;
    setBusy(true);
    setError(null);
    try {
      await switchOrganization(next);
      onSwitched?.(next);
    } catch (caught) {
      setError(messageFor(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="gh-field gh-organization-switcher">
      <label className="gh-label" htmlFor={id}>
        {label}
      </label>
      <select
        id={id}
        className="gh-select"
        value={organization?.org_id ?? ''}
        disabled={!isLoaded || busy}
        aria-busy={busy}
        onChange={(event) => void choose(event.target.value)}
      >
        {personalLabel !== null || !organization ? <option value="">{personalLabel ?? '—'}</option> : null}
        {organizations.map((candidate) => (
          <option key={candidate.id} value={candidate.id}>
            {candidate.name}
          </option>
        ))}
      </select>
      <div className="gh-error" role="alert">
        {error}
      </div>
    </div>
  );
}
