-- DPoP (RFC 9449). The jti of every accepted proof, per key thumbprint, until the proof's iat
-- leaves the acceptance window (when Redis is configured, proofs are remembered there
-- instead); the sweeper removes expired rows.
CREATE TABLE used_dpop_proofs (
    jkt TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX used_dpop_proofs_expiry ON used_dpop_proofs (expires_at);

-- The key a session's refresh tokens are bound to (a public client's, or a first-party
-- sign-in's, that sent a proof): every refresh must prove possession of it. NULL: unbound.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;
-- The key the authorization request named (`dpop_jkt`, or the proof sent to /oauth2/par):
-- the code is exchanged only with a proof of that key.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
-- A client whose access tokens must all be DPoP-bound (RFC 9449 §5.2), 1 or 0.
ALTER TABLE oauth_clients ADD COLUMN dpop_bound_access_tokens BIGINT NOT NULL DEFAULT 0;
