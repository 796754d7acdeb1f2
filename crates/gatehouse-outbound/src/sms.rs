//! `TwilioChannel`, the SMS `Channel`: sends outbox rows of channel `sms` through a
//! Twilio-compatible HTTP API — `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, a form
//! body (`To`, `From`, `Body`), HTTP Basic auth with the account SID and auth token. The base
//! URL is configurable (tests point it at a local server that speaks the same API).
//!
//! Invariant: the number and the body (it holds a code) never reach a log line or a stored
//! error; errors name the HTTP status or the kind of failure only.

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::notify::SMS_CHANNEL;
use gatehouse_domain::notify::{Channel, DeliveryError, SmsPayload};

/// Where and as whom to send.
#[derive(Clone)]
pub struct TwilioSettings {
    /// `https://api.twilio.com` or a compatible gateway.
    pub api_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The sender: a number in E.164 form or a messaging-service SID.
    pub from: String,
}

impl std::fmt::Debug for TwilioSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TwilioSettings")
            .field("api_url", &self.api_url)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

pub struct TwilioChannel {
    http: reqwest::Client,
    messages_url: String,
    settings: TwilioSettings,
}

impl TwilioChannel {
    pub fn new(settings: TwilioSettings, timeout: Duration) -> Result<TwilioChannel, String> {
        let base = url::Url::parse(&settings.api_url)
            .map_err(|_| "the SMS API URL is not a URL".to_owned())?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err("the SMS API URL must be http(s)".into());
        }
        if settings.account_sid.is_empty() || settings.auth_token.is_empty() {
            return Err("the SMS account SID and auth token are required".into());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("gatehouse")
            .build()
            .map_err(|error| format!("SMS HTTP client: {error}"))?;
        let messages_url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base.as_str().trim_end_matches('/'),
            url::form_urlencoded::byte_serialize(settings.account_sid.as_bytes())
                .collect::<String>()
        );
        Ok(TwilioChannel { http, messages_url, settings })
    }
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> &'static str {
        SMS_CHANNEL
    }

    async fn deliver(&self, _kind: &str, payload: &serde_json::Value) -> Result<(), DeliveryError> {
        let message: SmsPayload = serde_json::from_value(payload.clone())
            .map_err(|_| DeliveryError::Permanent("malformed SMS payload".into()))?;
        let form = [
            ("To", message.to.as_str()),
            ("From", self.settings.from.as_str()),
            ("Body", message.body.as_str()),
        ];
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|error| {
                let kind = if error.is_timeout() { "timed out" } else { "unreachable" };
                DeliveryError::Temporary(format!("SMS API {kind}"))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let error = format!("SMS API answered {}", status.as_u16());
        // Throttling and server trouble pass; a refused request (bad number, bad credentials)
        // will be refused again.
        if status.is_server_error() || status.as_u16() == 429 {
            Err(DeliveryError::Temporary(error))
        } else {
            Err(DeliveryError::Permanent(error))
        }
    }
}
