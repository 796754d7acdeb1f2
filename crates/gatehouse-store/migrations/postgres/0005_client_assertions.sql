-- private_key_jwt (RFC 7523): each client assertion's jti is accepted once, and remembered
-- until the assertion would have expired anyway.
CREATE TABLE used_client_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
