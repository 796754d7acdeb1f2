-- The key hierarchy: the data keys that seal fields, key digests and pepper passwords, each
-- wrapped (sealed) by the master key. Rotating the master key rewraps these rows
-- (`gatehouse master-key reseal`) and changes nothing else.
CREATE TABLE data_keys (
    -- digest/<purpose>, aead/<purpose> or password-pepper.
    purpose TEXT NOT NULL,
    -- 1 for a purpose's first key; a password pepper's version is its PHC keyid.
    version BIGINT NOT NULL,
    -- The key's public id, carried by the values it seals.
    key_id BIGINT NOT NULL,
    -- XChaCha20-Poly1305 under the master key's wrapping key, AD = purpose, version and id.
    wrapped_key BLOB NOT NULL,
    -- The id of the master key that wrapped it.
    wrapped_by BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (purpose, version)
);
