//! The event stream: every catalogued event also goes to NATS JetStream, subject
//! `gatehouse.events.<type>`, with the event id as the message id (`Nats-Msg-Id`), so JetStream
//! drops a copy sent again. At-least-once through the outbox: the relay writes one `nats` row
//! per event and the worker publishes it here, waiting for JetStream's acknowledgement; NATS
//! being down fails nothing but that attempt (the row waits and is retried).
//!
//! The stream `GATEHOUSE_EVENTS` on `gatehouse.events.>` is created or updated at start, and
//! again before a publish if that could not be done then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use gatehouse_domain::health::ReadinessCheck;
use gatehouse_domain::notify::{Channel, DeliveryError, EVENT_STREAM_CHANNEL};

/// The JetStream stream Gatehouse keeps its events in.
pub const STREAM_NAME: &str = "GATEHOUSE_EVENTS";
/// Events are published on `gatehouse.events.<type>`.
pub const SUBJECT_PREFIX: &str = "gatehouse.events.";

pub struct NatsChannel {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream_ready: AtomicBool,
    timeout: Duration,
}

impl NatsChannel {
    /// Connects in the background (a server that is down at start is retried; nothing waits
    /// for it) and tries once to create or update the stream.
    pub async fn connect(url: &str, timeout: Duration) -> Result<NatsChannel, String> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(timeout)
            .name("gatehouse")
            .connect(url)
            .await
            .map_err(|_| "the NATS URL is not valid".to_owned())?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        let channel =
            NatsChannel { client, jetstream, stream_ready: AtomicBool::new(false), timeout };
        if let Err(error) = channel.ensure_stream().await {
            tracing::warn!(%error, "NATS: the event stream is not ready yet; publishing will retry");
        }
        Ok(channel)
    }

    /// Creates the stream, or updates it to capture `gatehouse.events.>`.
    async fn ensure_stream(&self) -> Result<(), String> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let config = jetstream::stream::Config {
            name: STREAM_NAME.to_owned(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            // A day of de-duplication by message id covers the outbox's retries.
            duplicate_window: Duration::from_secs(24 * 3600),
            ..Default::default()
        };
        let outcome = tokio::time::timeout(self.timeout, async {
            match self.jetstream.get_stream(STREAM_NAME).await {
                Ok(_) => self
                    .jetstream
                    .update_stream(&config)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(_) => self
                    .jetstream
                    .create_stream(config)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(|_| "NATS did not answer".to_owned())?;
        outcome.map_err(|error| format!("NATS: {error}"))?;
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}

#[async_trait]
impl Channel for NatsChannel {
    fn name(&self) -> &'static str {
        EVENT_STREAM_CHANNEL
    }

    async fn deliver(&self, kind: &str, payload: &serde_json::Value) -> Result<(), DeliveryError> {
        let Some(message) = payload.get("message") else {
            return Err(DeliveryError::Permanent("the row holds no message".into()));
        };
        let Some(id) = message["id"].as_str() else {
            return Err(DeliveryError::Permanent("the message has no id".into()));
        };
        let body = serde_json::to_vec(message)
            .map_err(|_| DeliveryError::Permanent("the message cannot be encoded".into()))?;
        self.ensure_stream().await.map_err(DeliveryError::Temporary)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let subject = format!("{SUBJECT_PREFIX}{kind}");
        let ack = tokio::time::timeout(self.timeout, async {
            self.jetstream
                .publish_with_headers(subject, headers, body.into())
                .await
                .map_err(|error| error.to_string())?
                .await
                .map_err(|error| error.to_string())
        })
        .await
        .map_err(|_| DeliveryError::Temporary("NATS did not acknowledge in time".into()))?;
        match ack {
            Ok(_) => Ok(()),
            Err(error) => Err(DeliveryError::Temporary(format!("NATS: {error}"))),
        }
    }
}

/// `/readyz` reports NATS without depending on it: the outbox keeps events while it is down.
pub struct NatsReadiness {
    client: async_nats::Client,
}

impl NatsReadiness {
    pub fn new(channel: &NatsChannel) -> NatsReadiness {
        NatsReadiness { client: channel.client.clone() }
    }
}

#[async_trait]
impl ReadinessCheck for NatsReadiness {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err("not connected; events wait in the outbox".into()),
        }
    }
}
