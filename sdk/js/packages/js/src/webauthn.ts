//! The browser side of a passkey ceremony, in WebAuthn Level 3 JSON: Gatehouse sends options
//! as JSON, the platform parses them (`PublicKeyCredential.parse*OptionsFromJSON`) and
//! serialises the answer (`credential.toJSON()`), so no base64url juggling happens here.

import { GatehouseError } from './errors.js';

interface JsonCapablePublicKeyCredential {
  parseCreationOptionsFromJSON(options: unknown): PublicKeyCredentialCreationOptions;
  parseRequestOptionsFromJSON(options: unknown): PublicKeyCredentialRequestOptions;
}

function platform(): JsonCapablePublicKeyCredential {
  const constructor = (globalThis as { PublicKeyCredential?: Partial<JsonCapablePublicKeyCredential> })
    .PublicKeyCredential;
  if (
    typeof constructor?.parseCreationOptionsFromJSON !== 'function' ||
    typeof constructor?.parseRequestOptionsFromJSON !== 'function' ||
    typeof navigator === 'undefined' ||
    !navigator.credentials
  ) {
    throw new GatehouseError({
      code: 'passkeys_unsupported',
      status: 0,
      detail: 'This browser cannot use passkeys (WebAuthn Level 3 JSON methods are missing).',
    });
  }
  return constructor as JsonCapablePublicKeyCredential;
}

/** Whether this browser can run Gatehouse's passkey ceremonies. */
export function passkeysSupported(): boolean {
  try {
    platform();
    return true;
  } catch {
    return false;
  }
}

function toJson(credential: Credential | null): unknown {
  if (!credential || typeof (credential as { toJSON?: unknown }).toJSON !== 'function') {
    throw new GatehouseError({ code: 'passkey_cancelled', status: 0, detail: 'No passkey was chosen.' });
  }
  return (credential as unknown as { toJSON(): unknown }).toJSON();
}

async function run(ceremony: () => Promise<Credential | null>): Promise<unknown> {
  try {
    return toJson(await ceremony());
  } catch (error) {
    if (error instanceof GatehouseError) throw error;
    // NotAllowedError: the user dismissed the dialog or it timed out.
    const name = (error as { name?: string })?.name;
    throw new GatehouseError({
      code: name === 'NotAllowedError' || name === 'AbortError' ? 'passkey_cancelled' : 'passkey_failed',
      status: 0,
      detail: (error as Error)?.message,
      cause: error,
    });
  }
}

/** `navigator.credentials.create` from Gatehouse's JSON options; answers `credential.toJSON()`. */
export async function createCredential(publicKey: unknown, signal?: AbortSignal): Promise<unknown> {
  const parsed = platform().parseCreationOptionsFromJSON(publicKey);
  return run(() => navigator.credentials.create({ publicKey: parsed, ...(signal ? { signal } : {}) }));
}

/** `navigator.credentials.get` from Gatehouse's JSON options; answers `credential.toJSON()`. */
export async function getCredential(
  publicKey: unknown,
  mediation?: CredentialMediationRequirement,
  signal?: AbortSignal,
): Promise<unknown> {
  const parsed = platform().parseRequestOptionsFromJSON(publicKey);
  return run(() =>
    navigator.credentials.get({
      publicKey: parsed,
      ...(mediation ? { mediation } : {}),
      ...(signal ? { signal } : {}),
    }),
  );
}
