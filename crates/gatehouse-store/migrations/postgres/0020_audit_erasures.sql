-- Accounts deleted whose personal fields the audit trail must lose: the chainer erases the
-- rows naming the subject once they are chained, at each run for ten minutes after the request
-- (rows committed late are erased too), then drops the request.
CREATE TABLE audit_erasures (
    subject_id TEXT NOT NULL PRIMARY KEY,
    requested_at BIGINT NOT NULL
);

-- The admins, for the notices operators get (an endpoint disabled).
CREATE INDEX users_system_role ON users (system_role, created_at) WHERE system_role IS NOT NULL;
