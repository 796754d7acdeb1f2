-- Upstream tokens kept for an identity when its provider is set to keep them (keep_tokens):
-- access token, refresh token, expiry and scopes as JSON, sealed under the upstream-tokens
-- data key (AD = the identity id). Unlinking the identity deletes them with the row.
ALTER TABLE user_identities ADD COLUMN tokens_ciphertext BLOB;
