-- Since when every delivery attempt to an endpoint has failed (NULL after a success); an
-- endpoint failing for webhooks.disable_after_seconds (3 days) is disabled, with an audit event.
ALTER TABLE webhooks ADD COLUMN failing_since BIGINT;
