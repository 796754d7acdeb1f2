-- Resource indicators (RFC 8707): the APIs access tokens can be issued for. `identifier` is the
-- absolute URI clients name in `resource` and the `aud` of its tokens; `scopes` (a JSON array)
-- the scopes it accepts, empty for any.
CREATE TABLE resource_servers (
    id TEXT NOT NULL PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_format TEXT NOT NULL,
    access_token_ttl_seconds BIGINT,
    -- Token exchange (RFC 8693) into this resource: the clients that may exchange a user's
    -- token for one acting on the user's behalf (delegation: an actor token, `act`), and those
    -- that may do it without one (impersonation). JSON arrays of client ids.
    delegation_clients TEXT NOT NULL DEFAULT '[]',
    impersonation_clients TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The resources an authorization request named (a JSON array), carried by its code to the
-- session its exchange opens; NULL for none.
ALTER TABLE authorization_codes ADD COLUMN resources TEXT;
ALTER TABLE sessions ADD COLUMN resources TEXT;
