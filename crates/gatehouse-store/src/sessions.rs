//! `SessionStore` on SQL: the `sessions` and `refresh_tokens` tables.

use async_trait::async_trait;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::sessions::{
    RefreshRotation, RefreshTokenRecord, RevokeReason, RotationOutcome, SessionRecord, SessionStore,
};
use gatehouse_domain::unit_of_work::UnitOfWork;
use gatehouse_domain::users::record::UserChange;
use gatehouse_domain::{Conflict, StoreError, UserRecord};

use crate::audit::{INSERT_AUDIT_EVENT, QUEUE_EVENT, bind_audit_event};
use crate::batch::{PgStatement, SqliteBatch, insert_from, insert_if, two_step_write};
use crate::cache::Invalidation;
use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::notify::{REMEMBER_DEVICE, SPEND_AUTHORIZATION_CODE};
use crate::users::bind_user_change;
use crate::users::user_from_row;
use gatehouse_domain::webhooks::is_catalogued;

/// Ends the sessions opened from browser session $1 (through its authorization codes) for
/// clients that take part in back-channel logout, at $2 for reason $3.
const END_BACKCHANNEL_SESSIONS_OF_BROWSER: &str = "UPDATE sessions SET revoked_at = $2, \
     revoked_reason = $3 WHERE revoked_at IS NULL AND id IN (SELECT issued_session_id \
     FROM authorization_codes WHERE browser_session_id = $1 AND issued_session_id IS NOT NULL) \
     AND client_id IN (SELECT client_id FROM oauth_clients WHERE backchannel_logout_uri IS NOT NULL)";

/// A new session's user write: the sign-in's change, only while the user is not suspended
/// (its row lock orders it against a suspension), answering the row as it is now.
const START_SESSION_USER: &str = crate::users::update_user_change_sql!(concat!(
    " AND suspended_at IS NULL RETURNING id, email_ciphertext, email_digest, username, ",
    "first_name, last_name, image_url, email_verified_at, password_hash, password_changed_at, ",
    "failed_sign_in_attempts, locked_until, suspended_at, last_sign_in_at, public_metadata, ",
    "private_metadata, system_role, created_at, updated_at"
));
/// [`START_SESSION_USER`] for a session that changes nothing of its user: a read.
const START_SESSION_ACTIVE_USER: &str = concat!(
    "SELECT id, email_ciphertext, email_digest, username, ",
    "first_name, last_name, image_url, email_verified_at, password_hash, password_changed_at, ",
    "failed_sign_in_attempts, locked_until, suspended_at, last_sign_in_at, public_metadata, ",
    "private_metadata, system_role, created_at, updated_at FROM users ",
    "WHERE id = $1 AND suspended_at IS NULL"
);
/// [`START_SESSION_ACTIVE_USER`] on PostgreSQL, where it holds a shared lock to the commit.
const START_SESSION_ACTIVE_USER_POSTGRES: &str = concat!(
    "SELECT id, email_ciphertext, email_digest, username, ",
    "first_name, last_name, image_url, email_verified_at, password_hash, password_changed_at, ",
    "failed_sign_in_attempts, locked_until, suspended_at, last_sign_in_at, public_metadata, ",
    "private_metadata, system_role, created_at, updated_at FROM users ",
    "WHERE id = $1 AND suspended_at IS NULL FOR SHARE"
);
use crate::{Database, with_pool};

macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, user_agent, ip, created_at, last_used_at, expires_at, revoked_at, ",
            "revoked_reason, client_id, scope, auth_time, nonce, amr, organization_id, impersonator, dpop_jkt, resources FROM sessions ",
            $rest
        )
    };
}

/// The names of the session columns, bare or with the prefix of a join (`s.id AS s_id`).
macro_rules! session_column_names {
    ($prefix:literal) => {
        SessionColumns {
            id: concat!($prefix, "id"),
            user_id: concat!($prefix, "user_id"),
            user_agent: concat!($prefix, "user_agent"),
            ip: concat!($prefix, "ip"),
            created_at: concat!($prefix, "created_at"),
            last_used_at: concat!($prefix, "last_used_at"),
            expires_at: concat!($prefix, "expires_at"),
            revoked_at: concat!($prefix, "revoked_at"),
            revoked_reason: concat!($prefix, "revoked_reason"),
            client_id: concat!($prefix, "client_id"),
            scope: concat!($prefix, "scope"),
            auth_time: concat!($prefix, "auth_time"),
            nonce: concat!($prefix, "nonce"),
            amr: concat!($prefix, "amr"),
            organization_id: concat!($prefix, "organization_id"),
            impersonator: concat!($prefix, "impersonator"),
            dpop_jkt: concat!($prefix, "dpop_jkt"),
            resources: concat!($prefix, "resources"),
        }
    };
}

/// Where a row holds each column of a session.
struct SessionColumns {
    id: &'static str,
    user_id: &'static str,
    user_agent: &'static str,
    ip: &'static str,
    created_at: &'static str,
    last_used_at: &'static str,
    expires_at: &'static str,
    revoked_at: &'static str,
    revoked_reason: &'static str,
    client_id: &'static str,
    scope: &'static str,
    auth_time: &'static str,
    nonce: &'static str,
    amr: &'static str,
    organization_id: &'static str,
    impersonator: &'static str,
    dpop_jkt: &'static str,
    resources: &'static str,
}

/// A `sessions` row as `select_sessions!` selects it.
const SESSION: SessionColumns = session_column_names!("");
/// A session joined to another table, its columns prefixed `s_`.
const JOINED_SESSION: SessionColumns = session_column_names!("s_");

fn session_from_row(
    row: &impl StoreRow,
    columns: &SessionColumns,
) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.read(columns.id)?,
        user_id: row.read(columns.user_id)?,
        user_agent: row.read(columns.user_agent)?,
        ip: row.read(columns.ip)?,
        created_at: row.read(columns.created_at)?,
        last_used_at: row.read(columns.last_used_at)?,
        expires_at: row.read(columns.expires_at)?,
        revoked_at: row.read(columns.revoked_at)?,
        revoked_reason: row.read(columns.revoked_reason)?,
        client_id: row.read(columns.client_id)?,
        scope: row.read(columns.scope)?,
        auth_time: row.read(columns.auth_time)?,
        nonce: row.read(columns.nonce)?,
        amr: row.read(columns.amr)?,
        organization_id: row.read(columns.organization_id)?,
        impersonator: row.read(columns.impersonator)?,
        dpop_jkt: row.read(columns.dpop_jkt)?,
        resources: resources_from_column(row.read(columns.resources)?)?,
    })
}

pub(crate) const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_digest, \
     session_id, created_at, expires_at, rotated_at) VALUES ($1, $2, $3, $4, $5)";

/// Binds a refresh token's columns in [`INSERT_REFRESH_TOKEN`]'s order.
pub(crate) fn bind_refresh_token<Q: StoreQuery>(query: Q, token: &RefreshTokenRecord) -> Q {
    query
        .bind_value(token.token_digest.as_slice())
        .bind_value(token.session_id.as_str())
        .bind_value(token.created_at)
        .bind_value(token.expires_at)
        .bind_value(token.rotated_at)
}

/// A rotation on SQLite, as one batch on the writer after [`SELECT_REFRESH_TOKEN_TO_ROTATE`]
/// (which answers the token as found, before the spend): the spend only while
/// `RefreshRotation::allows` holds, in SQL (presented, now, client, DPoP key) — the same
/// conditions [`ROTATE_REFRESH_TOKEN_POSTGRES`] checks.
const SPEND_REFRESH_TOKEN_IF_ALLOWED: &str = "UPDATE refresh_tokens SET rotated_at = $2 \
     WHERE token_digest = $1 AND rotated_at IS NULL AND expires_at > $2 AND EXISTS (SELECT 1 \
     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = refresh_tokens.session_id \
     AND s.revoked_at IS NULL AND s.expires_at > $2 AND u.suspended_at IS NULL \
     AND s.client_id IS $3 AND (s.dpop_jkt IS NULL OR s.dpop_jkt = $4))";

/// Its successor (successor, now, ttl, presented), only when the statement before it changed
/// a row (`changes()`), never outliving the session.
const INSERT_SUCCESSOR_IF_SPENT: &str = "INSERT INTO refresh_tokens (token_digest, session_id, \
     created_at, expires_at, rotated_at) SELECT $1, s.id, $2, MIN($2 + $3, s.expires_at), NULL \
     FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
     WHERE t.token_digest = $4 AND changes() = 1";

/// The session's touch (presented, now, touch if used before), only when the successor was
/// stored and the last use is old enough.
const TOUCH_SESSION_IF_ROTATED: &str = "UPDATE sessions SET last_used_at = $2 \
     WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_digest = $1) \
     AND last_used_at <= $3 AND changes() = 1";

/// A refresh token and its session, under the names [`JOINED_SESSION`] and
/// [`refresh_token_from_row`] read.
macro_rules! refresh_token_columns {
    () => {
        "t.token_digest, t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
         t.rotated_at, s.id AS s_id, s.user_id AS s_user_id, s.user_agent AS s_user_agent, \
         s.ip AS s_ip, s.created_at AS s_created_at, s.last_used_at AS s_last_used_at, \
         s.expires_at AS s_expires_at, s.revoked_at AS s_revoked_at, \
         s.revoked_reason AS s_revoked_reason, s.client_id AS s_client_id, s.scope AS s_scope, \
         s.auth_time AS s_auth_time, s.nonce AS s_nonce, s.amr AS s_amr, \
         s.organization_id AS s_organization_id, s.impersonator AS s_impersonator, \
         s.dpop_jkt AS s_dpop_jkt, s.resources AS s_resources"
    };
}

pub(crate) use refresh_token_columns;

const SELECT_REFRESH_TOKEN: &str = concat!(
    "SELECT ",
    refresh_token_columns!(),
    " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_digest = $1"
);

/// A refresh token, its session and whether its user is suspended (`u_suspended_at`): what a
/// rotation checks.
const SELECT_REFRESH_TOKEN_TO_ROTATE: &str = concat!(
    "SELECT ",
    refresh_token_columns!(),
    ", u.suspended_at AS u_suspended_at FROM refresh_tokens t \
     JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
     WHERE t.token_digest = $1"
);

/// A whole rotation on PostgreSQL as one statement, one round trip: it reads the token and its
/// session and its user's suspension (answered as they were before it), spends the token only while
/// `RefreshRotation::allows` holds (the same conditions, in SQL), stores the successor, touches
/// the session when its last use is old enough and announces that touch to the other
/// instances' caches (`pg_notify`, sent on commit, with [`crate::cache`]'s payload `$11 || id`).
/// Answers the found row with `rotated` and `touched`, or no row for an unknown token.
pub(crate) const ROTATE_REFRESH_TOKEN_POSTGRES: &str = concat!(
    "WITH found AS (SELECT ",
    refresh_token_columns!(),
    ", u.suspended_at AS u_suspended_at FROM refresh_tokens t \
        JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
        WHERE t.token_digest = $1), \
    spent AS ( \
        UPDATE refresh_tokens SET rotated_at = $2 WHERE token_digest = $1 AND rotated_at IS NULL \
        AND expires_at > $2 AND EXISTS (SELECT 1 FROM found WHERE s_revoked_at IS NULL \
            AND s_expires_at > $2 AND u_suspended_at IS NULL AND s_client_id IS NOT DISTINCT FROM $6::text \
            AND (s_dpop_jkt IS NULL OR s_dpop_jkt = $7::text)) \
        RETURNING session_id), \
    inserted AS ( \
        INSERT INTO refresh_tokens (token_digest, session_id, created_at, expires_at, rotated_at) \
        SELECT $3, found.s_id, $2, LEAST($2 + $4::bigint, found.s_expires_at), NULL \
        FROM spent, found RETURNING session_id), \
    touched AS ( \
        UPDATE sessions SET last_used_at = $2 WHERE id IN (SELECT session_id FROM inserted) \
        AND last_used_at <= $5 RETURNING id) \
    SELECT found.*, (SELECT COUNT(*) FROM inserted) AS rotated, \
        (SELECT COUNT(*) FROM (SELECT pg_notify($8, $9 || id) FROM touched) AS announced) AS touched \
    FROM found"
);

/// [`SessionStore::start_session`] on PostgreSQL for a session that changes nothing of its
/// user and a plain unit of work (events, and the authorization code it spends): the user's
/// row read with a shared lock (`found`), the code spent while the user is active (`spent`),
/// then the session, its refresh token, the events and their queue rows, each inserted once
/// per row of the guard (`spent`, or `found` without a code), all in one statement.
async fn start_session_in_one_statement(
    pool: &sqlx::PgPool,
    session: &SessionRecord,
    refresh_token: Option<&RefreshTokenRecord>,
    work: &UnitOfWork,
) -> Result<UserRecord, StoreError> {
    let guarded = |sql: &str, guard: &str| {
        insert_from(sql, guard)
            .ok_or_else(|| StoreError::Other(format!("not an insert of values: {sql}")))
    };
    let mut statement = PgStatement::default();
    statement.part("found", START_SESSION_ACTIVE_USER_POSTGRES).bind(session.user_id.as_str());
    let guard = match &work.spend_code {
        Some(code) => {
            let spend =
                format!("{SPEND_AUTHORIZATION_CODE} AND EXISTS (SELECT 1 FROM found) RETURNING 1");
            statement
                .part("spent", &spend)
                .bind(code.digest.as_slice())
                .bind(code.at)
                .bind(code.session_id.as_str());
            "spent"
        }
        None => "found",
    };
    bind_session(statement.part("session", &guarded(INSERT_SESSION, guard)?), session);
    if let Some(refresh_token) = refresh_token {
        bind_refresh_token(
            statement.part("refresh", &guarded(INSERT_REFRESH_TOKEN, guard)?),
            refresh_token,
        );
    }
    for (n, event) in work.events.iter().enumerate() {
        bind_audit_event(
            statement.part(&format!("event_{n}"), &guarded(INSERT_AUDIT_EVENT, guard)?),
            event,
        );
        if is_catalogued(&event.action) {
            statement
                .part(&format!("queued_{n}"), &guarded(QUEUE_EVENT, guard)?)
                .bind(event.id.as_str())
                .bind(event.occurred_at);
        }
    }
    let select = if work.spend_code.is_some() {
        "SELECT found.*, (SELECT COUNT(*) FROM spent) AS spent FROM found"
    } else {
        "SELECT found.*, 1::bigint AS spent FROM found"
    };
    let Some(row) = statement.fetch_optional(pool, select).await? else {
        return Err(StoreError::Conflict(Conflict::UserNotActive));
    };
    let spent: i64 = row.read("spent")?;
    if spent != 1 {
        return Err(StoreError::Conflict(Conflict::AuthorizationCodeSpent));
    }
    user_from_row(&row)
}

/// The code's spend while its user is active (digest, at, session, user id).
const SPEND_AUTHORIZATION_CODE_OF_ACTIVE_USER: &str = "UPDATE authorization_codes SET \
     used_at = $2, issued_session_id = $3 WHERE code_digest = $1 AND used_at IS NULL \
     AND EXISTS (SELECT 1 FROM users WHERE id = $4 AND suspended_at IS NULL)";

/// What the rest of a code exchange's writes wait for: the code spent for this session (code
/// digest, session id).
const CODE_SPENT_FOR_SESSION: &str = "SELECT 1 WHERE EXISTS (SELECT 1 FROM authorization_codes \
     WHERE code_digest = $1 AND issued_session_id = $2)";

/// [`SessionStore::start_session`] of a code exchange on SQLite, as one transaction sent to
/// the writer's thread in one round trip (the writer's lock is what bounds SQLite's write
/// rate, and every round trip holds it): the code spent while its user is active; the session,
/// its refresh token, the audit and queue rows each inserted only if the code was spent for
/// this session; then the user's row as stored. Which guard held is read from the results: no
/// user row is an inactive user, a user row without the spend a code spent before; either way
/// nothing was written.
async fn exchange_code_in_one_batch(
    writer: &std::sync::Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>,
    session: &SessionRecord,
    refresh_token: Option<&RefreshTokenRecord>,
    work: &UnitOfWork,
    code: &gatehouse_domain::unit_of_work::SpentCode,
) -> Result<UserRecord, StoreError> {
    let guarded = |sql: &str| {
        insert_if(sql, CODE_SPENT_FOR_SESSION)
            .ok_or_else(|| StoreError::Other(format!("not an insert of values: {sql}")))
    };
    let (digest, session_id) = (code.digest.as_slice(), session.id.as_str());
    let mut batch = SqliteBatch::default();
    batch
        .push(SPEND_AUTHORIZATION_CODE_OF_ACTIVE_USER)
        .bind(digest)
        .bind(code.at)
        .bind(code.session_id.as_str())
        .bind(session.user_id.as_str());
    bind_session(batch.push(&guarded(INSERT_SESSION)?), session).bind(digest).bind(session_id);
    if let Some(refresh_token) = refresh_token {
        bind_refresh_token(batch.push(&guarded(INSERT_REFRESH_TOKEN)?), refresh_token)
            .bind(digest)
            .bind(session_id);
    }
    for event in &work.events {
        bind_audit_event(batch.push(&guarded(INSERT_AUDIT_EVENT)?), event)
            .bind(digest)
            .bind(session_id);
        if is_catalogued(&event.action) {
            batch
                .push(&guarded(QUEUE_EVENT)?)
                .bind(event.id.as_str())
                .bind(event.occurred_at)
                .bind(digest)
                .bind(session_id);
        }
    }
    batch.push(START_SESSION_ACTIVE_USER).bind(session.user_id.as_str());
    let mut steps = batch.commit_on_writer_steps(writer).await?;
    let user = steps.pop().and_then(|read| read.rows.into_iter().next());
    let Some(user) = user else {
        return Err(StoreError::Conflict(Conflict::UserNotActive));
    };
    if steps.first().is_none_or(|spend| spend.changed != 1) {
        return Err(StoreError::Conflict(Conflict::AuthorizationCodeSpent));
    }
    if steps.get(1).is_none_or(|inserted| inserted.changed != 1) {
        // Only a code spent for another session than this one could get here.
        return Err(StoreError::Other("the exchange's session was not written".into()));
    }
    user_from_row(&user)
}

/// What a rotation found, from a row of [`SELECT_REFRESH_TOKEN_TO_ROTATE`]'s columns (not
/// rotated yet).
pub(crate) fn rotation_from_row<R: StoreRow>(row: &R) -> Result<RotationOutcome, StoreError> {
    let session = session_from_row(row, &JOINED_SESSION)?;
    let token = refresh_token_from_row(row, &session)?;
    let suspended_at: Option<i64> = row.read("u_suspended_at")?;
    Ok(RotationOutcome { token, session, user_suspended: suspended_at.is_some(), rotated: false })
}

/// The refresh token of a row read with [`refresh_token_columns!`], in `session`.
fn refresh_token_from_row<R: StoreRow>(
    row: &R,
    session: &SessionRecord,
) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        token_digest: row.read("token_digest")?,
        session_id: session.id.clone(),
        created_at: row.read("t_created_at")?,
        expires_at: row.read("t_expires_at")?,
        rotated_at: row.read("rotated_at")?,
    })
}

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, user_agent, ip, \
     created_at, last_used_at, expires_at, revoked_at, revoked_reason, client_id, scope, \
     auth_time, nonce, amr, organization_id, impersonator, dpop_jkt, resources) VALUES ($1, $2, $3, \
     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// Binds a session's columns in [`INSERT_SESSION`]'s order.
fn bind_session<Q: StoreQuery>(query: Q, session: &SessionRecord) -> Q {
    query
        .bind_value(session.id.as_str())
        .bind_value(session.user_id.as_str())
        .bind_value(session.user_agent.as_deref())
        .bind_value(session.ip.as_deref())
        .bind_value(session.created_at)
        .bind_value(session.last_used_at)
        .bind_value(session.expires_at)
        .bind_value(session.revoked_at)
        .bind_value(session.revoked_reason.as_deref())
        .bind_value(session.client_id.as_deref())
        .bind_value(session.scope.as_deref())
        .bind_value(session.auth_time)
        .bind_value(session.nonce.as_deref())
        .bind_value(session.amr.as_deref())
        .bind_value(session.organization_id.as_deref())
        .bind_value(session.impersonator.as_deref())
        .bind_value(session.dpop_jkt.as_deref())
        .bind_value(resources_column(&session.resources))
}

/// A list of resource identifiers as its column holds it: a JSON array, NULL when empty.
pub(crate) fn resources_column(resources: &[String]) -> Option<String> {
    (!resources.is_empty()).then(|| serde_json::Value::from(resources.to_vec()).to_string())
}

/// The column of [`resources_column`] read back.
pub(crate) fn resources_from_column(text: Option<String>) -> Result<Vec<String>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|error| StoreError::Corrupt(format!("resources: {error}"))),
    }
}

async fn insert_refresh_token<C: StoreConnection>(
    connection: &mut C,
    token: &RefreshTokenRecord,
) -> Result<u64, StoreError> {
    connection.execute(bind_refresh_token(C::statement(INSERT_REFRESH_TOKEN), token)).await
}

#[async_trait]
impl SessionStore for Database {
    async fn start_session(
        &self,
        session: &SessionRecord,
        refresh_token: Option<&RefreshTokenRecord>,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<UserRecord, StoreError> {
        let user_id = session.user_id.as_str();
        if let Some(code) = &work.spend_code {
            // Whatever comes of this spend, the code is read from the database from now on.
            self.cache().forget_code(&code.digest);
        }
        // A session started without a change to its user (an OAuth code exchange) only reads
        // the user's row: nothing to evict or announce, and on PostgreSQL a shared lock
        // (`FOR SHARE`: a suspension waits for the new session to commit, then revokes it),
        // so the sessions of one user start side by side instead of queueing on the row.
        let unchanged = change.is_empty();
        let user_changed = [Invalidation::User(user_id)];
        let changed: &[Invalidation<'_>] = if unchanged { &[] } else { &user_changed };
        let read_user = match self.backend() {
            _ if !unchanged => START_SESSION_USER,
            crate::Backend::Sqlite => START_SESSION_ACTIVE_USER,
            crate::Backend::Postgres => START_SESSION_ACTIVE_USER_POSTGRES,
        };
        // A password sign-in's or a code exchange's writes (no one-time token, outbox row or
        // trusted device): on SQLite, two round trips to the writer's thread — the user's row
        // and the code's spend, then the rest and the commit — instead of one per statement.
        // A code exchange on SQLite: one round trip to the writer's thread (see
        // `exchange_code_in_one_batch`).
        if let (Database::Sqlite(sqlite), true, true, Some(code)) = (
            self,
            unchanged,
            work.is_plain_but_for_a_code() && work.known_device.is_none(),
            &work.spend_code,
        ) {
            return exchange_code_in_one_batch(&sqlite.writer, session, refresh_token, work, code)
                .await;
        }
        if let (Database::Sqlite(sqlite), true) = (self, work.is_plain_but_for_a_code()) {
            let mut first = SqliteBatch::default();
            let spends_code = work.spend_code.is_some();
            if let Some(code) = &work.spend_code {
                first
                    .push(SPEND_AUTHORIZATION_CODE)
                    .bind(code.digest.as_slice())
                    .bind(code.at)
                    .bind(code.session_id.as_str());
            }
            let statement = first.push(read_user);
            if unchanged {
                statement.bind(user_id);
            } else {
                bind_user_change(statement, user_id, change);
            }
            let mut rest = SqliteBatch::default();
            bind_session(rest.push(INSERT_SESSION), session);
            if let Some(refresh_token) = refresh_token {
                bind_refresh_token(rest.push(INSERT_REFRESH_TOKEN), refresh_token);
            }
            if let Some(device) = &work.known_device {
                rest.push(REMEMBER_DEVICE)
                    .bind(device.user_id.as_str())
                    .bind(device.digest.as_slice())
                    .bind(device.seen_at);
            }
            for event in &work.events {
                bind_audit_event(rest.push(INSERT_AUDIT_EVENT), event);
                if is_catalogued(&event.action) {
                    rest.push(QUEUE_EVENT).bind(event.id.as_str()).bind(event.occurred_at);
                }
            }
            let user = two_step_write(&sqlite.writer, first, move |mut steps| {
                if spends_code && steps.first().is_none_or(|spend| spend.changed != 1) {
                    return Err(StoreError::Conflict(Conflict::AuthorizationCodeSpent));
                }
                let row = steps.pop().and_then(|read| read.rows.into_iter().next());
                let Some(row) = row else {
                    return Err(StoreError::Conflict(Conflict::UserNotActive));
                };
                Ok((user_from_row(&row)?, rest))
            })
            .await?;
            self.cache().invalidate(changed);
            return Ok(user);
        }
        // The same writes on PostgreSQL for a session that changes nothing of its user (a code
        // exchange): one statement, one round trip instead of eight (`BEGIN`, the user's row,
        // the session, its refresh token, the code's spend, the event and its queue row,
        // `COMMIT`). The code is spent only if the user is active, and every insert only if
        // the code was spent (or there is none), so a refusal writes nothing.
        if let (Database::Postgres(postgres), true, true) =
            (self, unchanged, work.is_plain_but_for_a_code() && work.known_device.is_none())
        {
            return start_session_in_one_statement(&postgres.pool, session, refresh_token, work)
                .await;
        }
        let user = write_transaction!(self, work: work, changed: changed, transaction => {
            let query = sqlx::query(read_user);
            let query =
                if unchanged { query.bind(user_id) } else { bind_user_change(query, user_id, change) };
            let row = query.fetch_optional(&mut *transaction).await.map_err(map_sqlx_error)?;
            let Some(row) = row else {
                return Err(StoreError::Conflict(Conflict::UserNotActive));
            };
            let user = user_from_row(&row)?;
            bind_session(sqlx::query(INSERT_SESSION), session)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            if let Some(refresh_token) = refresh_token {
                insert_refresh_token(&mut *transaction, refresh_token).await?;
            }
            user
        });
        Ok(user)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let cache = self.cache();
        if let Some(session) = cache.session(id) {
            return Ok(Some(session));
        }
        let load = cache.begin_load();
        let session = with_pool!(self, pool => {
            let row = sqlx::query(select_sessions!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.map(|row| session_from_row(&row, &SESSION)).transpose()?
        });
        if let Some(session) = &session {
            cache.put_session(load, session);
        }
        Ok(session)
    }

    async fn session_with_user(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        const SQL: &str = "SELECT u.id, u.email_ciphertext, u.email_digest, u.username, u.first_name, \
            u.last_name, u.image_url, u.email_verified_at, u.password_hash, u.password_changed_at, \
            u.failed_sign_in_attempts, u.locked_until, u.suspended_at, u.last_sign_in_at, \
            u.public_metadata, u.private_metadata, u.system_role, u.created_at, u.updated_at, \
            s.id AS s_id, s.user_id AS s_user_id, s.user_agent AS s_user_agent, s.ip AS s_ip, \
            s.created_at AS s_created_at, s.last_used_at AS s_last_used_at, s.expires_at AS s_expires_at, \
            s.revoked_at AS s_revoked_at, s.revoked_reason AS s_revoked_reason, s.client_id AS s_client_id, \
            s.scope AS s_scope, s.auth_time AS s_auth_time, s.nonce AS s_nonce, s.amr AS s_amr, s.organization_id AS s_organization_id, s.impersonator AS s_impersonator, s.dpop_jkt AS s_dpop_jkt, s.resources AS s_resources \
            FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1";
        let cache = self.cache();
        if let Some(session) = cache.session(id)
            && let Some(user) = cache.user(&session.user_id)
        {
            return Ok(Some((session, user)));
        }
        let load = cache.begin_load();
        let (session, user) = with_pool!(self, pool => {
            let Some(row) = sqlx::query(SQL).bind(id).fetch_optional(pool).await.map_err(map_sqlx_error)? else {
                return Ok(None);
            };
            (session_from_row(&row, &JOINED_SESSION)?, user_from_row(&row)?)
        });
        cache.put_session(load, &session);
        cache.put_user(load, &user);
        Ok(Some((session, user)))
    }

    async fn refresh_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<(RefreshTokenRecord, SessionRecord)>, StoreError> {
        with_pool!(self, pool => {
            let Some(row) = sqlx::query(SELECT_REFRESH_TOKEN).bind(digest).fetch_optional(pool).await.map_err(map_sqlx_error)?
            else {
                return Ok(None);
            };
            let session = session_from_row(&row, &JOINED_SESSION)?;
            Ok(Some((refresh_token_from_row(&row, &session)?, session)))
        })
    }

    async fn rotate_refresh_token(
        &self,
        rotation: &RefreshRotation<'_>,
    ) -> Result<Option<RotationOutcome>, StoreError> {
        // The hot write of every refresh. The spend, its successor and the session's touch
        // are one transaction (the successor and the touch conditional on the spend), and the
        // cache forgets the session only when its row changed.
        let (outcome, touched) = match self {
            Database::Sqlite(sqlite) => {
                // One round trip to the writer's thread: the token, its session and user as
                // found, then the spend guarded by the same conditions as on PostgreSQL (a
                // compare-and-set, so of two rotations of one token only the first changes
                // rows), the successor and the touch, each only if the one before changed a
                // row. Reading on the writer saves the round trip to a reader's thread.
                let mut batch = SqliteBatch::default();
                batch.push(SELECT_REFRESH_TOKEN_TO_ROTATE).bind(rotation.presented);
                batch
                    .push(SPEND_REFRESH_TOKEN_IF_ALLOWED)
                    .bind(rotation.presented)
                    .bind(rotation.now)
                    .bind(rotation.client_id)
                    .bind(rotation.dpop_jkt);
                batch
                    .push(INSERT_SUCCESSOR_IF_SPENT)
                    .bind(rotation.successor)
                    .bind(rotation.now)
                    .bind(rotation.ttl_seconds)
                    .bind(rotation.presented);
                batch
                    .push(TOUCH_SESSION_IF_ROTATED)
                    .bind(rotation.presented)
                    .bind(rotation.now)
                    .bind(rotation.touch_if_used_before);
                let steps = batch.commit_on_writer_steps(&sqlite.writer).await?;
                let Some(row) = steps.first().and_then(|read| read.rows.first()) else {
                    return Ok(None);
                };
                let mut found = rotation_from_row(row)?;
                // The invalidation (with the touch) is this process's only.
                found.rotated = steps.get(2).is_some_and(|inserted| inserted.changed == 1);
                let touched = steps.get(3).is_some_and(|touch| touch.changed == 1);
                (found, touched)
            }
            Database::Postgres(postgres) => {
                // One statement, its own transaction — or one of a group of rotations that
                // arrived together, one statement and one commit for all (`crate::rotations`).
                // The row lock makes concurrent rotations of one token queue, and all but the
                // first find it spent. The invalidation is announced (NOTIFY, sent on commit)
                // only with a touch.
                let Some(rotated) = postgres.rotate_refresh_token(rotation).await? else {
                    return Ok(None);
                };
                rotated
            }
        };
        if touched {
            self.cache().invalidate(&[Invalidation::Session(&outcome.session.id)]);
        }
        Ok(Some(outcome))
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        now: i64,
        reason: RevokeReason,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        // A browser session (no client) takes along the sessions of back-channel logout clients
        // opened from it (single logout); their user's cached sessions go with it.
        let browser_user: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1 AND client_id IS NULL")
                .bind(session_id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)
        })?;
        let mut changed = vec![Invalidation::Session(session_id)];
        if let Some(user_id) = &browser_user {
            changed.push(Invalidation::SessionsOfUser(user_id));
        }
        let revoked = write_transaction!(self, events: events, changed: &changed, transaction => {
            let revoked = sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(session_id)
            .bind(now)
            .bind(reason.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if revoked == 1 && browser_user.is_some() {
                sqlx::query(END_BACKCHANNEL_SESSIONS_OF_BROWSER)
                    .bind(session_id)
                    .bind(now)
                    .bind(reason.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            revoked
        });
        Ok(revoked == 1)
    }

    async fn active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_sessions!(
                "WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC"
            ))
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            let mut sessions = Vec::with_capacity(rows.len());
            for row in rows {
                sessions.push(session_from_row(&row, &SESSION)?);
            }
            Ok(sessions)
        })
    }

    async fn touch_session(&self, session_id: &str, now: i64) -> Result<(), StoreError> {
        let changed = [Invalidation::Session(session_id)];
        write_transaction!(self, changed: &changed, transaction => {
            sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2")
                .bind(session_id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn update_session_authentication(
        &self,
        session_id: &str,
        auth_time: i64,
        amr: &str,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let changed = [Invalidation::Session(session_id)];
        write_transaction!(self, events: events, changed: &changed, transaction => {
            sqlx::query("UPDATE sessions SET auth_time = $2, amr = $3 WHERE id = $1")
                .bind(session_id)
                .bind(auth_time)
                .bind(amr)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn set_session_organization(
        &self,
        session_id: &str,
        organization_id: Option<&str>,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let changed = [Invalidation::Session(session_id)];
        write_transaction!(self, events: events, changed: &changed, transaction => {
            sqlx::query("UPDATE sessions SET organization_id = $2 WHERE id = $1")
                .bind(session_id)
                .bind(organization_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }
}
