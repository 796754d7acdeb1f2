//! The MFA suites' shared set-up: an application on a `ManualClock` with the SMTP sink and the
//! local SMS gateway, and helpers that enrol, sign in, verify and read codes the way a person
//! (or an authenticator app) would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use gatehouse_crypto::MasterKey;
use gatehouse_domain::ManualClock;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::sms::SmsGateway;
use super::smtp::SmtpSink;
use super::{STRONG_PASSWORD, TestApp};

pub struct Env {
    pub app: TestApp,
    pub sink: SmtpSink,
    pub sms: SmsGateway,
    pub clock: Arc<ManualClock>,
    pub admin: String,
}

pub fn wall_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub async fn spawn(test: &TestDatabase, extra: &[(&str, &str)]) -> Env {
    spawn_keyed(test, &MasterKey::generate(), extra).await
}

/// [`spawn`] with a given master key (a second instance on the same data).
pub async fn spawn_keyed(test: &TestDatabase, key: &MasterKey, extra: &[(&str, &str)]) -> Env {
    let sink = SmtpSink::start().await;
    let sms = SmsGateway::start().await;
    // Start at the beginning of a TOTP step, so "the same step" and "the next step" are
    // unambiguous.
    let start = wall_clock() - wall_clock() % 30 + 30;
    let clock = Arc::new(ManualClock::new(start));
    let mut settings: Vec<(&str, String)> = vec![
        ("GATEHOUSE_SMTP_URL", sink.url()),
        ("GATEHOUSE_SMTP_FROM", "Gatehouse Tests <id@example.com>".into()),
        ("GATEHOUSE_OUTBOX_POLL_INTERVAL_MS", "50".into()),
    ];
    settings.extend(sms.settings());
    let mut pairs: Vec<(&str, &str)> =
        settings.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.extend_from_slice(extra);
    let app = TestApp::spawn_with_clock(test, key, &pairs, Some(clock.clone())).await;
    let admin = app.admin_key().await;
    Env { app, sink, sms, clock, admin }
}

impl Env {
    pub fn now(&self) -> u64 {
        use gatehouse_domain::Clock;
        self.clock.now() as u64
    }

    /// Signs up and answers the access token.
    pub async fn user(&self, email: &str) -> String {
        let tokens = self.app.sign_up(email, STRONG_PASSWORD).await;
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Enrols TOTP for the bearer; answers (secret, backup codes).
    pub async fn enrol_totp(&self, token: &str) -> (String, Vec<String>) {
        let (status, enrolment) = self.app.post("/v1/me/mfa/totp", Some(token), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_owned();
        let code = totp(&secret, self.now());
        let (status, confirmed) =
            self.app.post("/v1/me/mfa/totp/confirm", Some(token), json!({ "code": code })).await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        let codes = confirmed["backup_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// Signs in with the password and expects the second step; answers the body.
    pub async fn challenge(&self, email: &str) -> Value {
        let (status, body) = self.app.sign_in(email, STRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mfa_required"], true, "{body}");
        assert!(body.get("access_token").is_none(), "no tokens before the second factor");
        body
    }

    pub async fn verify(&self, mfa_token: &str, method: &str, code: &str) -> (StatusCode, Value) {
        self.app
            .post(
                "/v1/auth/mfa/verify",
                None,
                json!({ "mfa_token": mfa_token, "method": method, "code": code }),
            )
            .await
    }

    /// The `reason` of each audit event `action`, oldest first.
    pub async fn audit_reasons(&self, action: &str) -> Vec<String> {
        let (status, log) = self
            .app
            .get_auth(&format!("/v1/admin/audit-log?action={action}&limit=100"), &self.admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let mut reasons: Vec<String> = log["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["metadata"]["reason"].as_str().unwrap_or("").to_owned())
            .collect();
        reasons.reverse();
        reasons
    }

    pub async fn user_id(&self, email: &str) -> String {
        let (_, users) =
            self.app.get_auth(&format!("/v1/admin/users?email={email}"), &self.admin).await;
        users["data"][0]["id"].as_str().unwrap().to_owned()
    }
}

/// The TOTP code of `secret` (base32) at `time`, computed with totp-rs as an authenticator app
/// would.
pub fn totp(secret: &str, time: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret.as_bytes().to_vec()).build().unwrap();
    totp.generate(time).to_string()
}

/// The claims of a JWT (not verified: the server's own tests check signatures).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
    )
    .unwrap()
}

pub fn code_in_subject(mail: &super::smtp::Received) -> String {
    mail.subject().rsplit(' ').next().unwrap().trim().to_owned()
}

/// Waits for a message to `address` whose text contains `needle`.
pub async fn wait_for_text(sink: &SmtpSink, address: &str, needle: &str) -> super::smtp::Received {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(mail) =
            sink.messages_to(address).into_iter().find(|mail| mail.text().contains(needle))
        {
            return mail;
        }
        assert!(std::time::Instant::now() < deadline, "no message with {needle:?} to {address}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The code of the `count`-th code email to `address`, waiting for it.
pub async fn emailed_code(sink: &SmtpSink, address: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let codes: Vec<_> = sink
            .messages_to(address)
            .into_iter()
            .filter(|mail| mail.subject().contains("verification code"))
            .collect();
        if codes.len() >= count {
            return code_in_subject(&codes[count - 1]);
        }
        assert!(std::time::Instant::now() < deadline, "{address}: {} codes", codes.len());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
