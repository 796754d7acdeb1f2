//! Back-channel logout out (OpenID Connect Back-Channel Logout 1.0 §2.5): the outbox `Channel`
//! that `POST`s `logout_token=…` (form-encoded) to a client's `backchannel_logout_uri`, with a
//! token signed for the attempt by the domain, to an address the SSRF guard checked at that
//! moment (the connection is pinned to it; no redirect is followed). 2xx is success; anything
//! else is retried on the outbox's schedule. A client deleted, or no longer taking part, is
//! told nothing (the row fails permanently).
//!
//! Invariant: the logout token never reaches a log line or a stored error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::notify::{Channel, DeliveryError, DeliveryReport};
use gatehouse_domain::oauth::backchannel::{
    BACKCHANNEL_LOGOUT_CHANNEL, BackchannelLogout, LogoutNotice,
};
use gatehouse_domain::outbound::OutboundGuard;

use crate::webhook::{outcome, pinned_client};

pub struct BackchannelLogoutChannel {
    logout: Arc<BackchannelLogout>,
    guard: Arc<dyn OutboundGuard>,
    timeout: Duration,
}

impl BackchannelLogoutChannel {
    /// `timeout`: one call's bound.
    pub fn new(
        logout: Arc<BackchannelLogout>,
        guard: Arc<dyn OutboundGuard>,
        timeout: Duration,
    ) -> BackchannelLogoutChannel {
        BackchannelLogoutChannel { logout, guard, timeout }
    }

    async fn post(
        &self,
        payload: &serde_json::Value,
    ) -> (Result<(), DeliveryError>, Option<DeliveryReport>) {
        let permanent = |text: &str| (Err(DeliveryError::Permanent(text.to_owned())), None);
        let temporary = |text: String| (Err(DeliveryError::Temporary(text)), None);
        let Ok(notice) = serde_json::from_value::<LogoutNotice>(payload.clone()) else {
            return permanent("the row holds no logout notice");
        };
        let delivery = match self.logout.delivery(&notice).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => return permanent("the client no longer takes part in back-channel logout"),
            Err(error) => return temporary(format!("cannot make the logout token: {error}")),
        };
        // Checked at every attempt: the DNS answer may have changed since registration.
        let addresses = match self.guard.check(&delivery.uri).await {
            Ok(addresses) => addresses,
            Err(reason) => return temporary(format!("the target is refused: {reason}")),
        };
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("gatehouse-backchannel-logout");
        let client = match pinned_client(builder, &delivery.uri, &addresses) {
            Ok(client) => client,
            Err(reason) => return temporary(reason),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &delivery.logout_token)
            .finish();
        let response = client
            .post(&delivery.uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return temporary("the receiver timed out".into()),
            Err(error) if error.is_connect() => {
                return temporary("the receiver refused the connection".into());
            }
            Err(_) => return temporary("the request failed".into()),
        };
        let (result, report) = outcome(response).await;
        (result, Some(report))
    }
}

#[async_trait]
impl Channel for BackchannelLogoutChannel {
    fn name(&self) -> &'static str {
        BACKCHANNEL_LOGOUT_CHANNEL
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
}
