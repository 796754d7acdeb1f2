-- Passkeys (WebAuthn credentials) and the ceremonies that register or use them.

-- One row per registered credential. `credential` is webauthn-rs's serialised credential
-- (public key, algorithm, flags: public material, no secret); the columns beside it are what the
-- user sees and what sign-in looks up. `sign_count` is the authority for the signature counter.
CREATE TABLE passkeys (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The credential id, base64url without padding (as WebAuthn JSON writes it).
    credential_id TEXT NOT NULL,
    credential TEXT NOT NULL,
    name TEXT NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0,
    -- Space-separated AuthenticatorTransport values (usb, nfc, ble, internal, hybrid).
    transports TEXT NOT NULL DEFAULT '',
    backup_eligible BIGINT NOT NULL,
    backup_state BIGINT NOT NULL,
    aaguid TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    -- Set when an assertion's signature counter went backwards (a possible clone): the
    -- credential signs nobody in until the user removes it and registers again.
    flagged_at BIGINT
);
CREATE UNIQUE INDEX passkeys_credential_id ON passkeys (credential_id);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- Ceremonies between their two requests (when Redis is not configured): single use, minutes
-- long, looked up by a keyed digest of the ceremony id; swept when expired.
CREATE TABLE passkey_ceremonies (
    id_digest BYTEA NOT NULL PRIMARY KEY,
    -- JSON: the kind, the user it is bound to, the webauthn-rs state.
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies (expires_at);
