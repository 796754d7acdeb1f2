-- OAuth Client ID Metadata Documents: a client whose client_id is its document's URL is kept
-- here like any other; until this time the stored copy is served, then the document is
-- fetched again. NULL for every other client.
ALTER TABLE oauth_clients ADD COLUMN document_expires_at BIGINT;
