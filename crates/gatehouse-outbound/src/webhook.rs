//! Webhooks out: the SSRF guard ([`TargetGuard`], the one rule of
//! `gatehouse_domain::outbound` applied to a URL's resolved addresses) and the webhook
//! `Channel` ([`WebhookChannel`]): `POST` of the event message as JSON, signed per the Standard
//! Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`) at each
//! attempt, to an address the guard checked at that moment — the connection is pinned to it, so
//! a DNS answer that changes between the check and the call (rebinding) changes nothing. No
//! redirects are followed; 2xx is success; the answer's status and the start of its body are
//! reported to the delivery log.
//!
//! Invariant: the signing secret and the message never reach a log line or a stored error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::notify::{Channel, DeliveryError, DeliveryReport};
use gatehouse_domain::outbound::{
    OutboundGuard, OutboundPolicy, check_url_form, is_public_address,
};
use gatehouse_domain::webhooks::{EventMessage, WEBHOOK_CHANNEL, WebhookService};

/// At most this much of a receiver's answer is kept in the delivery log.
const MAX_REPORTED_BODY: usize = 1024;

/// Resolves a URL's host and applies the SSRF rule to every address it resolves to.
pub struct TargetGuard {
    policy: OutboundPolicy,
}

impl TargetGuard {
    pub fn new(policy: OutboundPolicy) -> TargetGuard {
        TargetGuard { policy }
    }
}

#[async_trait]
impl OutboundGuard for TargetGuard {
    async fn check(&self, url: &str) -> Result<Vec<SocketAddr>, String> {
        let (host, port) = check_url_form(url, self.policy)?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| "its host name does not resolve".to_owned())?
            .collect();
        if addresses.is_empty() {
            return Err("its host name does not resolve".into());
        }
        if !self.policy.allow_private_targets
            && addresses.iter().any(|address| !is_public_address(address.ip()))
        {
            return Err("it points to a private, loopback, link-local or metadata address".into());
        }
        Ok(addresses)
    }
}

/// The webhook retry schedule (about a day), scaled so the first wait is `first_retry`:
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h by default; each wait varies by ±20 %.
const SCHEDULE_SECONDS: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

pub struct WebhookChannel {
    webhooks: Arc<WebhookService>,
    guard: Arc<dyn OutboundGuard>,
    timeout: Duration,
    first_retry: Duration,
}

impl WebhookChannel {
    /// `timeout`: one call's bound (10 s); `first_retry`: the schedule's first wait (5 s; tests
    /// shorten it, and the rest of the schedule with it).
    pub fn new(
        webhooks: Arc<WebhookService>,
        guard: Arc<dyn OutboundGuard>,
        timeout: Duration,
        first_retry: Duration,
    ) -> WebhookChannel {
        WebhookChannel { webhooks, guard, timeout, first_retry }
    }

    /// One attempt, and what it means for the endpoint's failing streak: only a call that
    /// went out to the receiver counts (a deleted, disabled or refused endpoint does not).
    async fn post(
        &self,
        payload: &serde_json::Value,
    ) -> (Result<(), DeliveryError>, Option<DeliveryReport>) {
        let (result, report, reached) = self.call(payload).await;
        if let (Some(webhook_id), true) = (payload["webhook_id"].as_str(), reached)
            && let Err(error) = self.webhooks.record_outcome(webhook_id, result.is_ok()).await
        {
            tracing::warn!(%error, "could not record a webhook outcome");
        }
        (result, report)
    }

    /// One attempt; the third value says whether the call went out to the receiver.
    async fn call(
        &self,
        payload: &serde_json::Value,
    ) -> (Result<(), DeliveryError>, Option<DeliveryReport>, bool) {
        let permanent = |text: &str| (Err(DeliveryError::Permanent(text.to_owned())), None, false);
        let temporary = |text: String| (Err(DeliveryError::Temporary(text)), None, false);
        // The call went out: the receiver failed to answer well.
        let unanswered = |text: &str| (Err(DeliveryError::Temporary(text.to_owned())), None, true);
        let Some(webhook_id) = payload["webhook_id"].as_str() else {
            return permanent("the delivery names no endpoint");
        };
        let message: EventMessage = match serde_json::from_value(payload["message"].clone()) {
            Ok(message) => message,
            Err(_) => return permanent("the delivery holds no message"),
        };
        let target = match self.webhooks.target(webhook_id).await {
            Ok(Some(target)) => target,
            Ok(None) => return permanent("the endpoint was deleted"),
            Err(error) => return temporary(format!("cannot read the endpoint: {error}")),
        };
        if !target.active {
            return temporary("the endpoint is disabled".into());
        }
        // Checked at every attempt: the DNS answer may have changed since registration.
        let addresses = match self.guard.check(&target.url).await {
            Ok(addresses) => addresses,
            Err(reason) => return temporary(format!("the target is refused: {reason}")),
        };
        let body = match serde_json::to_vec(&message) {
            Ok(body) => body,
            Err(_) => return permanent("the message cannot be encoded"),
        };
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
        let signature =
            gatehouse_crypto::webhook_signature(&target.secrets, &message.id, timestamp, &body);
        let client = match self.client_for(&target.url, &addresses) {
            Ok(client) => client,
            Err(reason) => return temporary(reason),
        };
        let response = client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return unanswered("the receiver timed out"),
            Err(error) if error.is_connect() => {
                return unanswered("the receiver refused the connection");
            }
            Err(_) => return temporary("the request failed".into()),
        };
        let (result, report) = outcome(response).await;
        (result, Some(report), true)
    }

    /// A client that connects to the checked address only, follows no redirect, and gives up
    /// after the timeout.
    fn client_for(&self, url: &str, addresses: &[SocketAddr]) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("gatehouse-webhooks");
        pinned_client(builder, url, addresses)
    }
}

/// `builder`'s client, connecting to `url`'s host at the first of `addresses` (those the
/// [`TargetGuard`] checked) only: a DNS answer that changed since the check is not followed.
pub(crate) fn pinned_client(
    mut builder: reqwest::ClientBuilder,
    url: &str,
    addresses: &[SocketAddr],
) -> Result<reqwest::Client, String> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .ok_or_else(|| "the URL names no host".to_owned())?;
    if let Some(first) = addresses.first() {
        builder = builder.resolve(host.trim_start_matches('[').trim_end_matches(']'), *first);
    }
    builder.build().map_err(|_| "cannot build the HTTP client".to_owned())
}

/// What a receiver's answer means for the delivery: 2xx is success, anything else a failure to
/// retry; the status and the start of the body go to the delivery log.
pub(crate) async fn outcome(
    response: reqwest::Response,
) -> (Result<(), DeliveryError>, DeliveryReport) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let report = DeliveryReport {
        status_code: Some(i64::from(status.as_u16())),
        body: Some(truncate(&text, MAX_REPORTED_BODY)).filter(|body| !body.is_empty()),
    };
    if status.is_success() {
        (Ok(()), report)
    } else {
        let error = DeliveryError::Temporary(format!("the receiver answered {}", status.as_u16()));
        (Err(error), report)
    }
}

fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        WEBHOOK_CHANNEL
    }

    async fn deliver(&self, _kind: &str, payload: &serde_json::Value) -> Result<(), DeliveryError> {
        self.post(payload).await.0
    }

    async fn deliver_reporting(
        &self,
        _kind: &str,
        payload: &serde_json::Value,
    ) -> (Result<(), DeliveryError>, Option<DeliveryReport>) {
        self.post(payload).await
    }

    fn retry_delay(&self, attempts: i64) -> Option<Duration> {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
        let seconds = SCHEDULE_SECONDS[index.min(SCHEDULE_SECONDS.len() - 1)];
        let scaled = self.first_retry.mul_f64(seconds as f64 / SCHEDULE_SECONDS[0] as f64);
        let [a, b] = gatehouse_crypto::random_bytes::<2>();
        // ±20 %: receivers failing together do not all come back at once.
        let jitter = 0.8 + 0.4 * f64::from(u16::from_le_bytes([a, b])) / f64::from(u16::MAX);
        Some(scaled.mul_f64(jitter))
    }

    fn max_attempts(&self) -> Option<i64> {
        // The first attempt and one per wait of the schedule.
        Some(SCHEDULE_SECONDS.len() as i64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_unless_allowed() {
        let strict =
            TargetGuard::new(OutboundPolicy { require_https: false, allow_private_targets: false });
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://10.0.0.5/hook",
        ] {
            assert!(strict.check(url).await.is_err(), "{url}");
        }
        let open =
            TargetGuard::new(OutboundPolicy { require_https: false, allow_private_targets: true });
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
        let production =
            TargetGuard::new(OutboundPolicy { require_https: true, allow_private_targets: true });
        assert!(production.check("http://127.0.0.1:9/hook").await.is_err());
    }

    #[test]
    fn long_answers_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é");
    }
}
