//! `<UserButton>`: the signed-in user's initials as a menu button (WAI-ARIA menu button
//! pattern: Enter/Space/ArrowDown open it on the first item, arrows move, Escape closes and
//! gives focus back to the button, Tab leaves it).

import type { User } from '@gatehouse/js';
import { useEffect, useId, useRef, useState, type KeyboardEvent, type ReactNode } from 'react';
import { useGatehouse, useUser } from './context.js';

export interface UserButtonProps {
  /** Extra menu items before "Sign out". */
  items?: { label: string; onSelect: () => void }[];
  onSignedOut?: () => void;
}

export function displayName(user: User): string {
  const name = [user.first_name, user.last_name].filter(Boolean).join(' ');
  return name || user.username || user.email || 'Account';
}

function initials(user: User): string {
  const source = [user.first_name, user.last_name].filter(Boolean);
  if (source.length > 0) return source.map((part) => part!.charAt(0)).join('').toUpperCase();
  return (user.username ?? user.email ?? '?').charAt(0).toUpperCase();
}

export function UserButton({ items = [], onSignedOut }: UserButtonProps) {
  const client = useGatehouse();
  const { user } = useUser();
  const [open, setOpen] = useState(false);
  // The item to focus once the menu is on screen (focus needs the rendered element).
  const [pendingFocus, setPendingFocus] = useState<number | null>(null);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLUListElement>(null);
  const menuId = useId();

  const entries = [
    ...items,
    {
      label: 'Sign out',
      onSelect: () => {
        void client.signOut().finally(() => onSignedOut?.());
      },
    },
  ];

  useEffect(() => {
    if (!open) return;
    const close = (event: MouseEvent) => {
      if (!menu.current?.contains(event.target as Node) && !button.current?.contains(event.target as Node)) {
        setOpen(false);
      }
    };
    document.addEventListener('mousedown', close);
    return () => document.removeEventListener('mousedown', close);
  }, [open]);

  useEffect(() => {
    if (!open || pendingFocus === null) return;
    focusItem(pendingFocus);
    setPendingFocus(null);
  }, [open, pendingFocus]);

  if (!user) return null;

  function openAt(index: number) {
    setOpen(true);
    setPendingFocus(index);
  }

  function close() {
    setOpen(false);
    button.current?.focus();
  }

  function focusItem(index: number) {
    const elements = menu.current?.querySelectorAll<HTMLElement>('[role="menuitem"]');
    if (!elements || elements.length === 0) return;
    elements[(index + elements.length) % elements.length]?.focus();
  }

  function onButtonKey(event: KeyboardEvent) {
    if (event.key === 'ArrowDown' || event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      openAt(0);
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      openAt(-1);
    }
  }

  function onMenuKey(event: KeyboardEvent) {
    const elements = [...(menu.current?.querySelectorAll<HTMLElement>('[role="menuitem"]') ?? [])];
    const current = elements.indexOf(document.activeElement as HTMLElement);
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      focusItem(current + 1);
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      focusItem(current - 1);
    } else if (event.key === 'Home') {
      event.preventDefault();
      focusItem(0);
    } else if (event.key === 'End') {
      event.preventDefault();
      focusItem(-1);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      close();
    } else if (event.key === 'Tab') {
      setOpen(false);
    }
  }

  const name = displayName(user);
  let menuContent: ReactNode = null;
  if (open) {
    menuContent = (
      <ul className="gh-menu" role="menu" id={menuId} aria-label={name} ref={menu} onKeyDown={onMenuKey}>
        <li role="none" className="gh-menu-header">
          <span className="gh-menu-name">{name}</span>
          {user.email && user.email !== name ? <span className="gh-menu-email">{user.email}</span> : null}
        </li>
        {entries.map((entry) => (
          <li role="none" key={entry.label}>
            <button
              type="button"
              role="menuitem"
              tabIndex={-1}
              className="gh-menu-item"
              onClick={() => {
                setOpen(false);
                entry.onSelect();
              }}
            >
              {entry.label}
            </button>
          </li>
        ))}
      </ul>
    );
  }

  return (
    <div className="gh-user-button">
      <button
        type="button"
        ref={button}
        className="gh-avatar"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        aria-label={`Account menu for ${name}`}
        onClick={() => (open ? setOpen(false) : openAt(0))}
        onKeyDown={onButtonKey}
      >
        {user.image_url ? <img src={user.image_url} alt="" className="gh-avatar-image" /> : initials(user)}
      </button>
      {menuContent}
    </div>
  );
}
