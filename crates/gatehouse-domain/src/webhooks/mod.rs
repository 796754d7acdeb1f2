//! Webhooks: endpoints registered through the admin API receive the catalogue's events,
//! signed per the Standard Webhooks specification.
//!
//! How an event travels, and the rules on the way:
//! - A catalogued audit event is queued (`event_queue`) by the store in the transaction that
//!   records it, so nothing is emitted for a change that rolled back.
//! - The relay ([`WebhookService::relay_once`], run beside the outbox worker) turns queued
//!   events into one outbox row per subscribed active endpoint (channel `webhook`, the message
//!   sealed like every outbox payload) — and one for the event stream (channel `nats`) when
//!   NATS is configured — and dequeues them, in one transaction; on PostgreSQL
//!   instances share the queue with `SKIP LOCKED`, so an event is relayed once.
//! - The outbox worker delivers each row through the webhook channel (`gatehouse-outbound`),
//!   which signs at each attempt with the endpoint's secret — and the previous one for 24 h
//!   after a rotation — and follows the SSRF rule ([`crate::outbound`]) at each attempt. 2xx
//!   is success; retries follow the webhook schedule, not the email one. Ordering is not
//!   promised; the event id (`webhook-id`) makes receivers idempotent.
//! - Signing secrets (`whsec_…`) are shown once, at creation and rotation, and stored sealed
//!   (data key purpose `webhook-secret`, AD = the endpoint id).

pub mod catalogue;
pub mod record;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_crypto::{FieldCipher, WebhookSecret};

pub use catalogue::{is_catalogued, subscribed, valid_subscription};
pub use record::{
    DeliveryAttemptView, EventMessage, WebhookDelivery, WebhookRecord, WebhookSubscription,
};
pub use store::WebhookStore;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue};
use crate::notify::{EmailPayload, Notifier, OutboxRecord};
use crate::outbound::{OutboundGuard, OutboundPolicy, check_url_form};
use crate::principal::{AdminPrincipal, RequestContext};
use crate::unit_of_work::{UnitOfWork, UnitOfWorkStore};
use crate::users::directory::UserDirectory;

/// Field-cipher purpose of signing secrets (AD = the endpoint id).
pub const WEBHOOK_SECRET_PURPOSE: &str = "webhook-secret";
pub use crate::notify::WEBHOOK_CHANNEL;

const MAX_URL_LENGTH: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_SUBSCRIPTIONS: usize = 50;
/// Events the relay takes per transaction.
const RELAY_BATCH: u32 = 100;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub policy: OutboundPolicy,
    /// How long the secret before a rotation keeps signing (24 h).
    pub previous_secret_overlap_seconds: i64,
    /// Whether events also go to the event stream (NATS JetStream is configured).
    pub event_stream: bool,
    /// An endpoint whose every attempt has failed for this long is disabled (3 days).
    pub disable_after_seconds: i64,
}

/// What registering an endpoint takes.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

/// Where and how to deliver to an endpoint now.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub active: bool,
    /// The current secret first, then the previous one while it still signs.
    pub secrets: Vec<WebhookSecret>,
}

pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    work: Arc<dyn UnitOfWorkStore>,
    notifier: Arc<Notifier>,
    cipher: FieldCipher,
    guard: Arc<dyn OutboundGuard>,
    /// Who is told when an endpoint is disabled.
    admins: Arc<UserDirectory>,
    clock: Arc<dyn Clock>,
    settings: WebhookSettings,
}

/// What [`WebhookService::new`] is built from.
pub struct WebhookParts {
    pub store: Arc<dyn WebhookStore>,
    pub work: Arc<dyn UnitOfWorkStore>,
    pub notifier: Arc<Notifier>,
    pub cipher: FieldCipher,
    pub guard: Arc<dyn OutboundGuard>,
    pub admins: Arc<UserDirectory>,
    pub clock: Arc<dyn Clock>,
    pub settings: WebhookSettings,
}

impl WebhookService {
    pub fn new(parts: WebhookParts) -> WebhookService {
        let WebhookParts { store, work, notifier, cipher, guard, admins, clock, settings } = parts;
        WebhookService { store, work, notifier, cipher, guard, admins, clock, settings }
    }

    /// Registers an endpoint; answers it with its signing secret, shown this once.
    pub async fn create(
        &self,
        admin: &AdminPrincipal,
        request: NewWebhook,
        context: &RequestContext,
    ) -> Result<(WebhookRecord, String), DomainError> {
        let mut issues = Vec::new();
        let events = subscriptions(&request.events, &mut issues);
        let description = description(request.description.as_deref(), &mut issues);
        self.check_url(&request.url, &mut issues).await;
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let now = self.clock.now();
        let id = gatehouse_crypto::new_id("whk");
        let secret = WebhookSecret::generate();
        let record = WebhookRecord {
            secret: self.seal(&id, &secret)?,
            id,
            url: request.url,
            description,
            events,
            active: true,
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let event = self.event("webhook.created", admin, context, &record);
        self.store.insert_webhook(&record, &[event]).await?;
        Ok((record, secret.expose().to_string()))
    }

    /// Every endpoint, newest first.
    pub async fn list(&self, _admin: &AdminPrincipal) -> Result<Vec<WebhookRecord>, DomainError> {
        Ok(self.store.list_webhooks().await?)
    }

    pub async fn get(
        &self,
        _admin: &AdminPrincipal,
        id: &str,
    ) -> Result<WebhookRecord, DomainError> {
        self.store.webhook(id).await?.ok_or(DomainError::NotFound)
    }

    /// Changes the URL (checked again), the subscriptions, the description or whether it is
    /// active.
    pub async fn update(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        change: WebhookChange,
        context: &RequestContext,
    ) -> Result<WebhookRecord, DomainError> {
        let mut record = self.get(admin, id).await?;
        let mut issues = Vec::new();
        if let Some(events) = &change.events {
            record.events = subscriptions(events, &mut issues);
        }
        if let Some(text) = &change.description {
            record.description = description(text.as_deref(), &mut issues);
        }
        if let Some(url) = change.url {
            self.check_url(&url, &mut issues).await;
            record.url = url;
        }
        if let Some(active) = change.active {
            record.active = active;
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        record.updated_at = self.clock.now();
        let event = self.event("webhook.updated", admin, context, &record);
        if !self.store.update_webhook(&record, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok(record)
    }

    /// Deletes the endpoint and its pending deliveries.
    pub async fn delete(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let record = self.get(admin, id).await?;
        let event = self.event("webhook.deleted", admin, context, &record);
        if !self.store.delete_webhook(id, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    /// A new signing secret, shown this once; the old one also signs for 24 hours, so
    /// receivers can switch without losing a message.
    pub async fn rotate_secret(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(WebhookRecord, String), DomainError> {
        let mut record = self.get(admin, id).await?;
        let now = self.clock.now();
        let secret = WebhookSecret::generate();
        record.previous_secret =
            Some(std::mem::replace(&mut record.secret, self.seal(id, &secret)?));
        record.previous_secret_until = Some(now + self.settings.previous_secret_overlap_seconds);
        record.updated_at = now;
        let event = self.event("webhook.secret_rotated", admin, context, &record);
        if !self.store.update_webhook(&record, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok((record, secret.expose().to_string()))
    }

    /// Sends a `webhook.test` message to this endpoint only; answers its delivery id.
    pub async fn send_test(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<String, DomainError> {
        let record = self.get(admin, id).await?;
        let now = self.clock.now();
        let event = self.event("webhook.tested", admin, context, &record);
        let message = EventMessage {
            id: gatehouse_crypto::new_id("evt"),
            event_type: catalogue::TEST_EVENT.to_owned(),
            timestamp: record::rfc3339(now),
            data: serde_json::json!({ "webhook_id": record.id }),
        };
        let row = self.delivery(Some(&record.id), &message, now)?;
        let delivery_id = row.id.clone();
        self.work
            .commit(&UnitOfWork { outbox: vec![row], ..UnitOfWork::events(vec![event]) })
            .await?;
        self.notifier.wake();
        Ok(delivery_id)
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, DomainError> {
        self.get(admin, id).await?;
        Ok(self.store.webhook_deliveries(id, before, limit).await?)
    }

    /// Where to deliver to endpoint `id` now (the webhook channel, at each attempt): `None`
    /// when it was deleted.
    pub async fn target(&self, id: &str) -> Result<Option<WebhookTarget>, DomainError> {
        let Some(record) = self.store.webhook(id).await? else { return Ok(None) };
        let mut secrets = vec![self.open(id, &record.secret)?];
        if let (Some(previous), Some(until)) =
            (&record.previous_secret, record.previous_secret_until)
            && until > self.clock.now()
        {
            secrets.push(self.open(id, previous)?);
        }
        Ok(Some(WebhookTarget { url: record.url, active: record.active, secrets }))
    }

    /// Records how an attempt to endpoint `id` ended (the webhook channel, after each answer or
    /// failure to reach it): an endpoint failing for `disable_after_seconds` is disabled, with
    /// a `webhook.disabled` audit event and an email to each admin, in one transaction. Its
    /// deliveries then wait (they are retried on their schedule, and sent once an admin turns
    /// it back on).
    pub async fn record_outcome(&self, id: &str, succeeded: bool) -> Result<(), DomainError> {
        let now = self.clock.now();
        let since = now - self.settings.disable_after_seconds;
        let mut disabled = None;
        if !succeeded {
            // What disabling writes, made only when this failure may disable it (the store
            // decides under its transaction; a success meanwhile keeps it on).
            let Some(record) = self.store.webhook(id).await? else { return Ok(()) };
            if record.active && record.failing_since.is_some_and(|start| start <= since) {
                disabled = Some(self.disabling(&record, now).await?);
            }
        }
        if self.store.record_webhook_outcome(id, succeeded, now, since, disabled.as_ref()).await? {
            tracing::warn!(webhook_id = %id, "webhook endpoint disabled: failing for too long");
            if disabled.as_ref().is_some_and(|work| !work.outbox.is_empty()) {
                self.notifier.wake();
            }
        }
        Ok(())
    }

    /// The audit event and the admins' emails of disabling `record`.
    async fn disabling(&self, record: &WebhookRecord, now: i64) -> Result<UnitOfWork, DomainError> {
        let hours = self.settings.disable_after_seconds / 3600;
        let event = AuditEvent::new(
            "webhook.disabled",
            &crate::principal::Actor::System,
            &RequestContext::default(),
            now,
        )
        .target("webhook", &record.id)
        .metadata(serde_json::json!({
            "reason": "failing",
            "failing_for_seconds_at_least": self.settings.disable_after_seconds,
        }));
        let mut outbox = Vec::new();
        if self.notifier.email_enabled() {
            for address in self.admins.admin_addresses().await? {
                let values = BTreeMap::from([
                    ("url".to_owned(), record.url.clone()),
                    ("webhook_id".to_owned(), record.id.clone()),
                    ("hours".to_owned(), hours.max(1).to_string()),
                ]);
                let payload = EmailPayload {
                    to: address,
                    locale: "en".to_owned(),
                    template: "webhook_disabled".to_owned(),
                    values,
                };
                outbox.push(self.notifier.email(&payload, now)?);
            }
        }
        Ok(UnitOfWork { outbox, ..UnitOfWork::events(vec![event]) })
    }

    /// Relays one batch of queued events to their endpoints' deliveries; answers how many
    /// events it took (0: the queue is empty).
    pub async fn relay_once(&self) -> Result<usize, DomainError> {
        let now = self.clock.now();
        let fan_out = |events: &[AuditEvent], endpoints: &[WebhookSubscription]| {
            let mut rows: Vec<OutboxRecord> = Vec::new();
            for event in events {
                let message = EventMessage::of(event);
                if self.settings.event_stream {
                    match self.delivery(None, &message, now) {
                        Ok(row) => rows.push(row),
                        Err(error) => {
                            tracing::error!(%error, event_id = %event.id, "could not seal an event for the stream");
                        }
                    }
                }
                for endpoint in endpoints {
                    if !subscribed(&endpoint.events, &event.action) {
                        continue;
                    }
                    match self.delivery(Some(&endpoint.id), &message, now) {
                        Ok(row) => rows.push(row),
                        Err(error) => {
                            tracing::error!(%error, event_id = %event.id, "could not seal a webhook delivery");
                        }
                    }
                }
            }
            rows
        };
        let relayed = self.store.relay_events(RELAY_BATCH, &fan_out).await?;
        if relayed > 0 {
            self.notifier.wake();
        }
        Ok(relayed)
    }

    /// Runs the relay until `shutdown`: a batch, then another at once while the queue has
    /// more, else a pause of `interval`.
    pub async fn run_relay(
        self: Arc<Self>,
        interval: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.relay_once().await {
                Ok(relayed) if relayed >= RELAY_BATCH as usize => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the event relay could not run"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Events waiting for the relay and the age of the oldest, in seconds.
    pub async fn backlog(&self) -> Result<(i64, i64), DomainError> {
        Ok(self.store.event_backlog(self.clock.now()).await?)
    }

    /// The outbox row that delivers `message` to endpoint `webhook_id`, or to the event
    /// stream.
    fn delivery(
        &self,
        webhook_id: Option<&str>,
        message: &EventMessage,
        now: i64,
    ) -> Result<OutboxRecord, DomainError> {
        let body = serde_json::to_value(message)
            .map_err(|error| DomainError::Internal(format!("event message: {error}")))?;
        self.notifier.event_delivery(webhook_id, &message.event_type, &message.id, &body, now)
    }

    async fn check_url(&self, url: &str, issues: &mut Vec<FieldIssue>) {
        if url.len() > MAX_URL_LENGTH {
            issues.push(FieldIssue::new("url", "invalid", "At most 2048 characters."));
            return;
        }
        if let Err(reason) = check_url_form(url, self.settings.policy) {
            issues.push(FieldIssue::new(
                "url",
                "invalid",
                format!("The URL is refused: {reason}."),
            ));
            return;
        }
        if let Err(reason) = self.guard.check(url).await {
            issues.push(FieldIssue::new(
                "url",
                "refused_target",
                format!("The URL is refused: {reason}."),
            ));
        }
    }

    fn seal(&self, id: &str, secret: &WebhookSecret) -> Result<Vec<u8>, DomainError> {
        Ok(self.cipher.seal(id.as_bytes(), secret.expose().as_bytes())?)
    }

    fn open(&self, id: &str, sealed: &[u8]) -> Result<WebhookSecret, DomainError> {
        let plain = zeroize::Zeroizing::new(self.cipher.open(id.as_bytes(), sealed)?);
        let text = std::str::from_utf8(&plain)
            .map_err(|_| DomainError::Internal("a webhook secret is not text".into()))?;
        Ok(WebhookSecret::parse(text)?)
    }

    fn event(
        &self,
        action: &str,
        admin: &AdminPrincipal,
        context: &RequestContext,
        record: &WebhookRecord,
    ) -> AuditEvent {
        AuditEvent::new(action, admin.actor(), context, self.clock.now())
            .target("webhook", &record.id)
            .metadata(serde_json::json!({
                "url": record.url,
                "events": record.events,
                "active": record.active,
            }))
    }
}

/// Subscriptions, validated and without duplicates.
fn subscriptions(requested: &[String], issues: &mut Vec<FieldIssue>) -> Vec<String> {
    if requested.is_empty() || requested.len() > MAX_SUBSCRIPTIONS {
        issues.push(FieldIssue::new("events", "invalid", "1 to 50 event types."));
        return Vec::new();
    }
    let mut events: Vec<String> = Vec::new();
    for pattern in requested {
        if !valid_subscription(pattern) {
            issues.push(FieldIssue::new(
                "events",
                "unknown_event",
                format!("{pattern:?} is not an event type, a family's \"family.*\" or \"*\"."),
            ));
        } else if !events.contains(pattern) {
            events.push(pattern.clone());
        }
    }
    events
}

fn description(text: Option<&str>, issues: &mut Vec<FieldIssue>) -> Option<String> {
    let text = text.map(str::trim).filter(|text| !text.is_empty())?;
    if text.chars().count() > MAX_DESCRIPTION_CHARS || text.chars().any(char::is_control) {
        issues.push(FieldIssue::new("description", "invalid", "At most 500 characters."));
        return None;
    }
    Some(text.to_owned())
}
