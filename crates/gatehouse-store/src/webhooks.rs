//! `WebhookStore` on SQL: the `webhooks` table, the relay over `event_queue` (catalogued audit
//! events queued in their change's transaction), and the webhook channel's deliveries (outbox
//! rows whose `subject` is the endpoint).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::unit_of_work::UnitOfWork;
use gatehouse_domain::webhooks::store::FanOut;
use gatehouse_domain::webhooks::{
    DeliveryAttemptView, WEBHOOK_CHANNEL, WebhookDelivery, WebhookRecord, WebhookStore,
    WebhookSubscription,
};

use crate::audit::audit_event_from_row;
use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! webhook_columns {
    () => {
        "id, url, description, events, active, secret, previous_secret, previous_secret_until, \
         created_at, updated_at"
    };
}

/// The relay's claim: the oldest queued events with their audit rows. `$lock` is the one
/// dialect difference (PostgreSQL skips events another instance is relaying).
macro_rules! claim_events_sql {
    ($lock:literal) => {
        concat!(
            "SELECT a.id AS id, a.occurred_at AS occurred_at, a.action AS action, ",
            "a.actor_type AS actor_type, a.actor_id AS actor_id, a.target_type AS target_type, ",
            "a.target_id AS target_id, a.organization_id AS organization_id, a.ip AS ip, ",
            "a.user_agent AS user_agent, ",
            "a.request_id AS request_id, a.metadata AS metadata ",
            "FROM event_queue q JOIN audit_events a ON a.id = q.event_id ",
            "ORDER BY q.queued_at, q.event_id LIMIT $1",
            $lock
        )
    };
}

fn webhook_from_row(row: &impl StoreRow) -> Result<WebhookRecord, StoreError> {
    let events: String = row.read("events")?;
    let active: i64 = row.read("active")?;
    Ok(WebhookRecord {
        id: row.read("id")?,
        url: row.read("url")?,
        description: row.read("description")?,
        events: events.split_whitespace().map(str::to_owned).collect(),
        active: active != 0,
        secret: row.read("secret")?,
        previous_secret: row.read("previous_secret")?,
        previous_secret_until: row.read("previous_secret_until")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
        failing_since: row.read("failing_since")?,
    })
}

#[async_trait]
impl WebhookStore for Database {
    async fn insert_webhook(
        &self,
        webhook: &WebhookRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(concat!(
                "INSERT INTO webhooks (", webhook_columns!(), ") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(webhook.id.as_str())
            .bind(webhook.url.as_str())
            .bind(webhook.description.as_deref())
            .bind(webhook.events.join(" "))
            .bind(i64::from(webhook.active))
            .bind(webhook.secret.as_slice())
            .bind(webhook.previous_secret.as_deref())
            .bind(webhook.previous_secret_until)
            .bind(webhook.created_at)
            .bind(webhook.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", webhook_columns!(), ", failing_since FROM webhooks WHERE id = $1"
            ))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(webhook_from_row).transpose()
        })
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", webhook_columns!(), ", failing_since FROM webhooks \
                 ORDER BY created_at DESC, id DESC"
            ))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(webhook_from_row).collect()
        })
    }

    async fn update_webhook(
        &self,
        webhook: &WebhookRecord,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let updated = write_transaction!(self, events: events, transaction => {
            let updated = sqlx::query(
                "UPDATE webhooks SET url = $2, description = $3, events = $4, active = $5, \
                 secret = $6, previous_secret = $7, previous_secret_until = $8, updated_at = $9 \
                 WHERE id = $1",
            )
            .bind(webhook.id.as_str())
            .bind(webhook.url.as_str())
            .bind(webhook.description.as_deref())
            .bind(webhook.events.join(" "))
            .bind(i64::from(webhook.active))
            .bind(webhook.secret.as_slice())
            .bind(webhook.previous_secret.as_deref())
            .bind(webhook.previous_secret_until)
            .bind(webhook.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(updated)
    }

    async fn record_webhook_outcome(
        &self,
        id: &str,
        succeeded: bool,
        now: i64,
        disable_if_failing_since: i64,
        disabled: Option<&UnitOfWork>,
    ) -> Result<bool, StoreError> {
        let disabled_now = write_transaction!(self, events: &[], transaction => {
            if succeeded {
                sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(id)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
                false
            } else {
                sqlx::query("UPDATE webhooks SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
                // No early return: it would leave the function and roll the streak back.
                match disabled {
                    None => false,
                    Some(disabled) => {
                        let switched = sqlx::query(
                            "UPDATE webhooks SET active = 0, updated_at = $2 \
                             WHERE id = $1 AND active = 1 AND failing_since <= $3",
                        )
                        .bind(id)
                        .bind(now)
                        .bind(disable_if_failing_since)
                        .execute(&mut *transaction)
                        .await
                        .map_err(map_sqlx_error)?
                        .rows_affected()
                            == 1;
                        if switched {
                            crate::notify::apply_work(&mut *transaction, disabled).await?;
                        }
                        switched
                    }
                }
            }
        });
        Ok(disabled_now)
    }

    async fn delete_webhook(&self, id: &str, events: &[AuditEvent]) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, events: events, transaction => {
            let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            // Its deliveries not yet made have nowhere to go.
            sqlx::query(
                "DELETE FROM outbox WHERE channel = $1 AND subject = $2 AND status = 'pending'",
            )
            .bind(WEBHOOK_CHANNEL)
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            true
        });
        Ok(deleted)
    }

    async fn relay_events(&self, limit: u32, fan_out: FanOut<'_>) -> Result<usize, StoreError> {
        let claim = match self {
            Database::Sqlite(_) => claim_events_sql!(""),
            Database::Postgres(_) => claim_events_sql!(" FOR UPDATE OF q SKIP LOCKED"),
        };
        let relayed = write_transaction!(self, events: &[], transaction => {
            let rows = sqlx::query(claim)
                .bind(i64::from(limit))
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            if rows.is_empty() {
                return Ok(0);
            }
            let events = rows.iter().map(audit_event_from_row).collect::<Result<Vec<_>, _>>()?;
            let subscriptions = sqlx::query("SELECT id, events FROM webhooks WHERE active = 1")
                .fetch_all(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .iter()
                .map(|row| {
                    let events: String = row.read("events")?;
                    Ok(WebhookSubscription {
                        id: row.read("id")?,
                        events: events.split_whitespace().map(str::to_owned).collect(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let work = UnitOfWork { outbox: fan_out(&events, &subscriptions), ..UnitOfWork::default() };
            crate::notify::apply_work(&mut *transaction, &work).await?;
            for event in &events {
                sqlx::query("DELETE FROM event_queue WHERE event_id = $1")
                    .bind(event.id.as_str())
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?;
            }
            events.len()
        });
        Ok(relayed)
    }

    async fn event_backlog(&self, now: i64) -> Result<(i64, i64), StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT COUNT(*) AS queued, MIN(queued_at) AS oldest FROM event_queue")
                .fetch_one(pool)
                .await
                .map_err(map_sqlx_error)?;
            let queued: i64 = row.read("queued")?;
            let oldest: Option<i64> = row.read("oldest")?;
            Ok::<_, StoreError>((queued, oldest.map_or(0, |oldest| (now - oldest).max(0))))
        })
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, kind, event_id, status, attempts, created_at, delivered_at, next_attempt_at \
                 FROM outbox WHERE channel = $1 AND subject = $2 AND ($3 IS NULL OR id < $3) \
                 ORDER BY id DESC LIMIT $4",
            )
            .bind(WEBHOOK_CHANNEL)
            .bind(webhook_id)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            let mut deliveries = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.read("id")?;
                let last = sqlx::query(
                    "SELECT started_at, duration_ms, response_status, response_body, error \
                     FROM outbox_attempts WHERE outbox_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1",
                )
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
                let last_attempt = match last {
                    Some(attempt) => Some(DeliveryAttemptView {
                        at: attempt.read("started_at")?,
                        duration_ms: attempt.read("duration_ms")?,
                        status_code: attempt.read("response_status")?,
                        response_body: attempt.read("response_body")?,
                        error: attempt.read("error")?,
                    }),
                    None => None,
                };
                deliveries.push(WebhookDelivery {
                    event_type: row.read("kind")?,
                    event_id: row.read("event_id")?,
                    status: row.read("status")?,
                    attempts: row.read("attempts")?,
                    created_at: row.read("created_at")?,
                    delivered_at: row.read("delivered_at")?,
                    next_attempt_at: row.read("next_attempt_at")?,
                    last_attempt,
                    id,
                });
            }
            Ok::<_, StoreError>(deliveries)
        })
    }
}
