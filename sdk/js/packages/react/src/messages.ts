//! What the components say when something fails, by the server's stable error code.

import { GatehouseError } from '@gatehouse/js';

const MESSAGES: Record<string, string> = {
  invalid_credentials: 'The email or password is not right.',
  email_taken: 'An account with this email already exists. Sign in instead.',
  username_taken: 'This username is taken.',
  password_too_weak: 'Choose a stronger password.',
  password_breached: 'This password appeared in a data breach. Choose another one.',
  validation_failed: 'Check the highlighted fields.',
  rate_limited: 'Too many attempts. Wait a moment and try again.',
  invalid_mfa_code: 'That code is not right.',
  mfa_code_replayed: 'That code was already used. Wait for the next one.',
  mfa_token_expired: 'The sign-in took too long. Start again.',
  invalid_mfa_token: 'The sign-in took too long. Start again.',
  signup_disabled: 'Sign-up is closed.',
  passkey_cancelled: 'No passkey was chosen.',
  passkeys_unsupported: 'This browser cannot use passkeys.',
  network_error: 'Gatehouse cannot be reached. Check your connection.',
};

export function messageFor(error: unknown): string {
  if (error instanceof GatehouseError) {
    return MESSAGES[error.code] ?? error.detail ?? 'Something went wrong. Try again.';
  }
  return 'Something went wrong. Try again.';
}

/** Per-field messages of a `validation_failed` (or password) error. */
export function fieldMessages(error: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (error instanceof GatehouseError) {
    for (const problem of error.errors) fields[problem.field] ??= problem.message;
    if (error.code.startsWith('password_') && !fields.password) fields.password = messageFor(error);
  }
  return fields;
}
