//! A second Gatehouse as the upstream OpenID provider of this one (`corp`, "Corp SSO"): the
//! federation suites' shared set-up, and a browser's way through both (one cookie jar each).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::oauth_browser::{Browser, Page, query};
use super::{STRONG_PASSWORD, TestApp};

pub const CLIENT_ID: &str = "downstream-app";
pub const CLIENT_SECRET: &str = "an-upstream-client-secret-of-forty-chars!";

/// The upstream (a Gatehouse on SQLite) and this server configured with it as `corp`.
pub struct Pair {
    pub upstream: TestApp,
    pub app: TestApp,
    pub admin: String,
    pub upstream_admin: String,
    _upstream_database: TestDatabase,
}

pub async fn pair(test: &TestDatabase, trust_email_verified: bool) -> Pair {
    let upstream_database = TestDatabase::sqlite().await.unwrap();
    let upstream = TestApp::spawn_with(
        &upstream_database,
        &MasterKey::generate(),
        &[("GATEHOUSE_SIGNING_ALGORITHM", "RS256")],
    )
    .await;
    let file = format!(
        r#"
[[identity_providers]]
id = "corp"
kind = "oidc"
name = "Corp SSO"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
trust_email_verified = {trust_email_verified}
"#,
        issuer = upstream.base_url
    );
    let app = TestApp::spawn_with_file(test, &MasterKey::generate(), Some(&file), &[], None).await;
    upstream
        .client(NewClient {
            client_id: Some(CLIENT_ID.into()),
            secret: Some(CLIENT_SECRET.into()),
            name: "Downstream".into(),
            redirect_uris: vec![app.url("/sso/corp/callback")],
            skip_consent: true,
            ..NewClient::default()
        })
        .await;
    let admin = app.admin_key().await;
    let upstream_admin = upstream.admin_key().await;
    Pair { upstream, app, admin, upstream_admin, _upstream_database: upstream_database }
}

impl Pair {
    /// A user of the upstream, with a password and (when `verified`) a verified address.
    pub async fn upstream_user(&self, email: &str, verified: bool) {
        let (status, created) = self
            .upstream
            .post(
                "/v1/admin/users",
                Some(&self.upstream_admin),
                json!({ "email": email, "password": STRONG_PASSWORD, "email_verified": verified }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }

    /// Starts `/sso/corp` in `browser` (this server's jar) and signs in upstream (`upstream`,
    /// the upstream's jar); answers this server's answer to the callback.
    pub async fn through_upstream(
        &self,
        browser: &mut Browser,
        upstream: &mut Browser,
        start: &str,
        email: &str,
    ) -> Page {
        let started = browser.get(start).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        let authorize = started.location.unwrap();
        assert!(authorize.starts_with(&self.upstream.base_url), "{authorize}");
        let parameters = query(&authorize);
        assert_eq!(parameters["code_challenge_method"], "S256");
        assert!(parameters.contains_key("nonce") && parameters.contains_key("state"));
        let page = upstream.get(&authorize).await;
        let login = upstream.follow(page).await;
        let back = upstream.sign_in(&login, email, STRONG_PASSWORD).await;
        let callback = back.location.expect("the upstream sends the browser back");
        assert!(callback.starts_with(&self.app.url("/sso/corp/callback")), "{callback}");
        browser.get(&callback).await
    }

    pub async fn users_named(&self, email: &str) -> Vec<Value> {
        let (status, users) =
            self.app.get_auth(&format!("/v1/admin/users?email={email}"), &self.admin).await;
        assert_eq!(status, StatusCode::OK, "{users}");
        users["data"].as_array().unwrap().clone()
    }

    pub async fn actions(&self, action: &str) -> Vec<Value> {
        let (_, log) =
            self.app.get_auth(&format!("/v1/admin/audit-log?action={action}"), &self.admin).await;
        log["data"].as_array().unwrap().clone()
    }

    pub async fn stop(self) {
        self.app.stop().await;
        self.upstream.stop().await;
    }
}
