//! The unit of work on SQL (`apply_work`: audit events, outbox rows, one-time tokens to
//! create or spend, the known device, the trusted browser, written inside the change's
//! transaction), and the ports over those tables: `OutboxStore` (`outbox`, `outbox_attempts`),
//! `OneTimeTokenStore` (`one_time_tokens`), `KnownDeviceStore` (`known_devices`).

use async_trait::async_trait;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::email_links::{OneTimeTokenRecord, OneTimeTokenStore};
use gatehouse_domain::known_devices::KnownDeviceStore;
use gatehouse_domain::notify::{
    AttemptOutcome, AttemptStatus, OutboxAttempt, OutboxQuery, OutboxRecord, OutboxStat,
    OutboxStatus, OutboxStore,
};
use gatehouse_domain::sessions::record::RevokeReason;
use gatehouse_domain::unit_of_work::{
    AccountDeletionChange, MailboxClaim, UnitOfWork, UnitOfWorkStore,
};
use gatehouse_domain::{Conflict, StoreError};

use crate::audit::insert_events;
use crate::columns::{StoreConnection, StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

/// Remembers (or refreshes) a device a user signed in from: user id, digest, now.
pub(crate) const REMEMBER_DEVICE: &str = "INSERT INTO known_devices (user_id, device_digest, \
     first_seen_at, last_seen_at) VALUES ($1, $2, $3, $3) ON CONFLICT (user_id, device_digest) \
     DO UPDATE SET last_seen_at = excluded.last_seen_at";

/// Spends an authorization code (digest, at, the session it issues): 1 row, or 0 when it was
/// spent already.
pub(crate) const SPEND_AUTHORIZATION_CODE: &str = "UPDATE authorization_codes SET used_at = $2, \
     issued_session_id = $3 WHERE code_digest = $1 AND used_at IS NULL";

/// Writes `work` on `connection` (the change's transaction): spends the token first (a token
/// already spent answers `Conflict(OneTimeTokenSpent)`, which leaves the write and rolls its
/// transaction back), then tokens, outbox rows, the known device, the trusted browser and the
/// audit events.
pub(crate) async fn apply_work<C: StoreConnection>(
    connection: &mut C,
    work: &UnitOfWork,
) -> Result<(), StoreError> {
    if let Some(spent) = &work.spend_token {
        let spend = C::statement(
            "UPDATE one_time_tokens SET used_at = $2 WHERE token_digest = $1 AND used_at IS NULL",
        );
        let spent = connection
            .execute(spend.bind_value(spent.digest.as_slice()).bind_value(spent.at))
            .await?;
        if spent != 1 {
            return Err(StoreError::Conflict(Conflict::OneTimeTokenSpent));
        }
    }
    if let Some(links) = &work.spend_account_links {
        spend_account_links(connection, &links.user_id, links.at).await?;
    }
    if let Some(claim) = &work.mailbox_claim {
        apply_mailbox_claim(connection, claim).await?;
    }
    if let Some(code) = &work.spend_code {
        let spend = C::statement(SPEND_AUTHORIZATION_CODE);
        let spent = connection
            .execute(
                spend
                    .bind_value(code.digest.as_slice())
                    .bind_value(code.at)
                    .bind_value(code.session_id.as_str()),
            )
            .await?;
        if spent != 1 {
            return Err(StoreError::Conflict(Conflict::AuthorizationCodeSpent));
        }
    }
    for token in &work.tokens {
        let insert = C::statement(
            "INSERT INTO one_time_tokens (token_digest, purpose, user_id, email_digest, \
             created_at, expires_at, used_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        );
        connection
            .execute(
                insert
                    .bind_value(token.token_digest.as_slice())
                    .bind_value(token.purpose.as_str())
                    .bind_value(token.user_id.as_str())
                    .bind_value(token.email_digest.as_deref())
                    .bind_value(token.created_at)
                    .bind_value(token.expires_at)
                    .bind_value(token.used_at)
                    .bind_value(token.payload.as_deref()),
            )
            .await?;
    }
    for row in &work.outbox {
        let insert = C::statement(
            "INSERT INTO outbox (id, channel, kind, payload, status, attempts, next_attempt_at, \
             claimed_by, lease_until, created_at, delivered_at, last_error, subject, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        );
        connection
            .execute(
                insert
                    .bind_value(row.id.as_str())
                    .bind_value(row.channel.as_str())
                    .bind_value(row.kind.as_str())
                    .bind_value(row.payload.as_slice())
                    .bind_value(row.status.as_str())
                    .bind_value(row.attempts)
                    .bind_value(row.next_attempt_at)
                    .bind_value(row.claimed_by.as_deref())
                    .bind_value(row.lease_until)
                    .bind_value(row.created_at)
                    .bind_value(row.delivered_at)
                    .bind_value(row.last_error.as_deref())
                    .bind_value(row.subject.as_deref())
                    .bind_value(row.event_id.as_deref()),
            )
            .await?;
    }
    match &work.account_deletion {
        Some(AccountDeletionChange::Schedule { user_id, requested_at, due_at, restore_digest }) => {
            let insert = C::statement(
                "INSERT INTO account_deletions (user_id, requested_at, due_at, restore_digest) \
                 VALUES ($1, $2, $3, $4)",
            );
            connection
                .execute(
                    insert
                        .bind_value(user_id.as_str())
                        .bind_value(*requested_at)
                        .bind_value(*due_at)
                        .bind_value(restore_digest.as_slice()),
                )
                .await?;
        }
        Some(AccountDeletionChange::Cancel { user_id }) => {
            let delete = C::statement("DELETE FROM account_deletions WHERE user_id = $1");
            connection.execute(delete.bind_value(user_id.as_str())).await?;
        }
        None => {}
    }
    if let Some(device) = &work.known_device {
        connection
            .execute(
                C::statement(REMEMBER_DEVICE)
                    .bind_value(device.user_id.as_str())
                    .bind_value(device.digest.as_slice())
                    .bind_value(device.seen_at),
            )
            .await?;
    }
    if let Some(browser) = &work.trusted_browser {
        let insert = C::statement(
            "INSERT INTO trusted_devices (id, user_id, token_digest, user_agent, ip, created_at, \
             expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        );
        connection
            .execute(
                insert
                    .bind_value(browser.id.as_str())
                    .bind_value(browser.user_id.as_str())
                    .bind_value(browser.token_digest.as_slice())
                    .bind_value(browser.user_agent.as_deref())
                    .bind_value(browser.ip.as_deref())
                    .bind_value(browser.created_at)
                    .bind_value(browser.expires_at)
                    .bind_value(browser.last_used_at)
                    .bind_value(browser.revoked_at),
            )
            .await?;
    }
    if let Some(passkey) = &work.passkey {
        crate::passkeys::insert_passkey_row(connection, passkey).await?;
    }
    if let Some(identity) = &work.identity {
        crate::identities::insert_identity_row(connection, identity).await?;
    }
    insert_events(connection, &work.events).await
}

/// Spends every unspent reset and magic-link token of the user at `at`.
async fn spend_account_links<C: StoreConnection>(
    connection: &mut C,
    user_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    let spend = C::statement(
        "UPDATE one_time_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL \
         AND purpose IN ('reset_password', 'magic_link')",
    );
    connection.execute(spend.bind_value(user_id).bind_value(at)).await?;
    Ok(())
}

/// Undoes what was set on an account before its mailbox was proven (see `MailboxClaim`):
/// sessions but the one kept are revoked, second factors, backup codes, pending codes and
/// trusted browsers go, and the password when asked.
async fn apply_mailbox_claim<C: StoreConnection>(
    connection: &mut C,
    claim: &MailboxClaim,
) -> Result<(), StoreError> {
    let user_id = claim.user_id.as_str();
    let revoke = C::statement(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $4 \
         WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3",
    );
    connection
        .execute(
            revoke
                .bind_value(user_id)
                .bind_value(claim.at)
                .bind_value(claim.keep_session.as_deref().unwrap_or(""))
                .bind_value(RevokeReason::MailboxClaimed.as_str()),
        )
        .await?;
    for sql in [
        "DELETE FROM mfa_factors WHERE user_id = $1",
        "DELETE FROM mfa_backup_codes WHERE user_id = $1",
        "DELETE FROM mfa_codes WHERE user_id = $1",
        // Passkeys registered before the mailbox was proven were not the owner's to add.
        "DELETE FROM passkeys WHERE user_id = $1",
    ] {
        connection.execute(C::statement(sql).bind_value(user_id)).await?;
    }
    let untrust = C::statement(
        "UPDATE trusted_devices SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    );
    connection.execute(untrust.bind_value(user_id).bind_value(claim.at)).await?;
    if claim.clear_password {
        let clear = C::statement(
            "UPDATE users SET password_hash = NULL, password_changed_at = $2, updated_at = $2 \
             WHERE id = $1",
        );
        connection.execute(clear.bind_value(user_id).bind_value(claim.at)).await?;
    }
    Ok(())
}

macro_rules! outbox_columns {
    () => {
        "id, channel, kind, payload, status, attempts, next_attempt_at, claimed_by, lease_until, \
         created_at, delivered_at, last_error, subject, event_id"
    };
}

/// The claim: due pending rows and rows whose lease ran out, oldest due first. `$lock` is the
/// one dialect difference (PostgreSQL skips rows another instance is claiming).
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET status = 'sending', claimed_by = $1, lease_until = $3, ",
            "attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE ",
            "(status = 'pending' AND next_attempt_at <= $2) OR (status = 'sending' AND lease_until <= $2) ",
            "ORDER BY next_attempt_at, id LIMIT $4",
            $lock,
            ") RETURNING ",
            outbox_columns!()
        )
    };
}

/// One `outbox` row, as `outbox_columns!` names them.
fn outbox_from_row(row: &impl StoreRow) -> Result<OutboxRecord, StoreError> {
    let status: String = row.read("status")?;
    Ok(OutboxRecord {
        id: row.read("id")?,
        channel: row.read("channel")?,
        kind: row.read("kind")?,
        payload: row.read("payload")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox status {status}")))?,
        attempts: row.read("attempts")?,
        next_attempt_at: row.read("next_attempt_at")?,
        claimed_by: row.read("claimed_by")?,
        lease_until: row.read("lease_until")?,
        created_at: row.read("created_at")?,
        delivered_at: row.read("delivered_at")?,
        last_error: row.read("last_error")?,
        subject: row.read("subject")?,
        event_id: row.read("event_id")?,
    })
}

/// One `outbox_attempts` row.
fn attempt_from_row(row: &impl StoreRow) -> Result<OutboxAttempt, StoreError> {
    let status: String = row.read("status")?;
    Ok(OutboxAttempt {
        id: row.read("id")?,
        outbox_id: row.read("outbox_id")?,
        worker: row.read("worker")?,
        status: AttemptStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox attempt status {status}")))?,
        error: row.read("error")?,
        started_at: row.read("started_at")?,
        report: {
            let status_code: Option<i64> = row.read("response_status")?;
            let body: Option<String> = row.read("response_body")?;
            (status_code.is_some() || body.is_some())
                .then_some(gatehouse_domain::notify::DeliveryReport { status_code, body })
        },
        duration_ms: row.read("duration_ms")?,
    })
}

/// One `one_time_tokens` row.
fn one_time_token_from_row(row: &impl StoreRow) -> Result<OneTimeTokenRecord, StoreError> {
    Ok(OneTimeTokenRecord {
        token_digest: row.read("token_digest")?,
        purpose: row.read("purpose")?,
        user_id: row.read("user_id")?,
        email_digest: row.read("email_digest")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        used_at: row.read("used_at")?,
        payload: row.read("payload")?,
    })
}

#[async_trait]
impl OutboxStore for Database {
    async fn claim_outbox(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = match self {
            Database::Sqlite(_) => claim_sql!(""),
            Database::Postgres(_) => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        };
        let claimed = write_transaction!(self, autocommit, pool => {
            let rows = sqlx::query(sql)
                .bind(worker)
                .bind(now)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(outbox_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(claimed)
    }

    async fn release_outbox(&self, worker: &str, ids: &[String]) -> Result<u64, StoreError> {
        let released = write_transaction!(self, transaction => {
            let mut released = 0;
            for id in ids {
                released += sqlx::query(
                    "UPDATE outbox SET status = 'pending', claimed_by = NULL, lease_until = NULL, \
                     attempts = attempts - 1 WHERE id = $1 AND claimed_by = $2 AND status = 'sending'",
                )
                .bind(id.as_str())
                .bind(worker)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            }
            released
        });
        Ok(released)
    }

    async fn finish_outbox_attempt(
        &self,
        attempt: &OutboxAttempt,
        outcome: AttemptOutcome,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let (status, delivered_at, next_attempt_at) = match outcome {
            AttemptOutcome::Delivered { at } => (OutboxStatus::Delivered, Some(at), None),
            AttemptOutcome::Retry { next_attempt_at } => {
                (OutboxStatus::Pending, None, Some(next_attempt_at))
            }
            AttemptOutcome::Dead => (OutboxStatus::Dead, None, None),
        };
        let applied = write_transaction!(self, transaction => {
            let applied = sqlx::query(
                "UPDATE outbox SET status = $3, delivered_at = $4, \
                 next_attempt_at = COALESCE($5, next_attempt_at), last_error = $6, \
                 claimed_by = NULL, lease_until = NULL \
                 WHERE id = $1 AND claimed_by = $2 AND status = 'sending'",
            )
            .bind(attempt.outbox_id.as_str())
            .bind(attempt.worker.as_str())
            .bind(status.as_str())
            .bind(delivered_at)
            .bind(next_attempt_at)
            .bind(attempt.error.as_deref())
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
                == 1;
            sqlx::query(
                "INSERT INTO outbox_attempts (id, outbox_id, worker, status, error, started_at, \
                 duration_ms, response_status, response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(attempt.id.as_str())
            .bind(attempt.outbox_id.as_str())
            .bind(attempt.worker.as_str())
            .bind(attempt.status.as_str())
            .bind(attempt.error.as_deref())
            .bind(attempt.started_at)
            .bind(attempt.duration_ms)
            .bind(attempt.report.as_ref().and_then(|report| report.status_code))
            .bind(attempt.report.as_ref().and_then(|report| report.body.as_deref()))
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            // The audit events (a dead letter) only for the outcome that applied.
            if applied {
                insert_events(&mut *transaction, events).await?;
            }
            applied
        });
        Ok(applied)
    }

    async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!("SELECT ", outbox_columns!(), " FROM outbox WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(outbox_from_row).transpose()
        })
    }

    async fn outbox_stats(&self) -> Result<Vec<OutboxStat>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT channel, status, COUNT(*) AS count, MIN(created_at) AS oldest \
                 FROM outbox GROUP BY channel, status",
            )
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter()
                .map(|row| {
                    let status: String = row.read("status")?;
                    Ok(OutboxStat {
                        channel: row.read("channel")?,
                        status: OutboxStatus::parse(&status)
                            .ok_or_else(|| StoreError::Corrupt(format!("outbox status {status}")))?,
                        count: row.read("count")?,
                        oldest_created_at: row.read("oldest")?,
                    })
                })
                .collect()
        })
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> Result<Vec<OutboxRecord>, StoreError> {
        let status = query.status.map(|status| status.as_str());
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", outbox_columns!(), " FROM outbox WHERE ($1 IS NULL OR status = $1) ",
                "AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ))
            .bind(status)
            .bind(query.before.as_deref())
            .bind(i64::from(query.limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(outbox_from_row).collect()
        })
    }

    async fn outbox_attempts(&self, outbox_id: &str) -> Result<Vec<OutboxAttempt>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, outbox_id, worker, status, error, started_at, duration_ms, \
                 response_status, response_body FROM outbox_attempts WHERE outbox_id = $1 \
                 ORDER BY started_at, id",
            )
            .bind(outbox_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(attempt_from_row).collect()
        })
    }

    async fn retry_outbox(
        &self,
        id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, transaction => {
            let updated = sqlx::query(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2, attempts = 0, \
                 claimed_by = NULL, lease_until = NULL WHERE id = $1 AND status <> 'sending'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
                == 1;
            if updated {
                insert_events(&mut *transaction, events).await?;
            }
            updated
        });
        Ok(updated)
    }
}

#[async_trait]
impl UnitOfWorkStore for Database {
    async fn commit(&self, work: &UnitOfWork) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {});
        Ok(())
    }
}

#[async_trait]
impl OneTimeTokenStore for Database {
    async fn one_time_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT token_digest, purpose, user_id, email_digest, created_at, expires_at, used_at, \
                 payload FROM one_time_tokens WHERE token_digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(one_time_token_from_row).transpose()
        })
    }
}

#[async_trait]
impl KnownDeviceStore for Database {
    async fn device_seen(
        &self,
        user_id: &str,
        device_digest: &[u8],
    ) -> Result<(bool, bool), StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM known_devices WHERE user_id = $1) AS any_device, \
                 (SELECT COUNT(*) FROM known_devices WHERE user_id = $1 AND device_digest = $2) \
                 AS this_device",
            )
            .bind(user_id)
            .bind(device_digest)
            .fetch_one(pool)
            .await
            .map_err(map_sqlx_error)?;
            Ok((row.any("any_device")?, row.any("this_device")?))
        })
    }
}
