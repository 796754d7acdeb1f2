//! `TestApp`: the real application on an ephemeral port against a fresh database, with typed
//! helpers. Readiness comes from the bound listener, never from sleeps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod binary;
pub mod mfa;
pub mod oauth_browser;
pub mod sms;
pub mod smtp;
pub mod upstream_pair;

use gatehouse::app::{self, App};
use gatehouse::config::Config;
use gatehouse_crypto::MasterKey;
use gatehouse_store::testing::TestDatabase;

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub database: gatehouse_store::Database,
    pub keys: std::sync::Arc<gatehouse_domain::KeyService>,
    pub admin_keys: std::sync::Arc<gatehouse_domain::admin_keys::AdminKeyService>,
    pub oauth: std::sync::Arc<gatehouse_domain::oauth::OAuthService>,
    pub clients: std::sync::Arc<gatehouse_domain::oauth::ClientService>,
    /// The clock the application runs on: a `ManualClock` when spawned with one.
    pub clock: Option<std::sync::Arc<gatehouse_domain::ManualClock>>,
    /// The application's sweeper (the same one its server runs every interval).
    pub sweeper: gatehouse::sweeper::SweeperTask,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _data_dir: tempfile::TempDir,
}

/// A configuration for tests: the given database, small Argon2id parameters (the production
/// defaults are tested where they matter), a fresh data directory and master key.
pub fn test_config(
    test: &TestDatabase,
    master_key: &MasterKey,
    data_dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Config {
    let mut pairs: std::collections::BTreeMap<String, String> = [
        ("GATEHOUSE_DATABASE_URL".to_owned(), test.url.clone()),
        ("GATEHOUSE_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("GATEHOUSE_MASTER_KEY".to_owned(), master_key.encode()),
        ("GATEHOUSE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_PASSWORD_MEMORY_KIB".to_owned(), "1024".to_owned()),
        ("GATEHOUSE_PASSWORD_ITERATIONS".to_owned(), "1".to_owned()),
        ("GATEHOUSE_PASSWORD_PARALLELISM".to_owned(), "1".to_owned()),
        ("GATEHOUSE_SIGNING_ALGORITHM".to_owned(), "ES256".to_owned()),
        // Tests sign in many times from 127.0.0.1; the rate-limit tests turn limits back on.
        ("GATEHOUSE_RATE_LIMIT_ENABLED".to_owned(), "false".to_owned()),
        // A rotation switches at once (its delay for several instances has its own test).
        ("GATEHOUSE_SIGNING_ROTATION_DELAY_SECONDS".to_owned(), "0".to_owned()),
    ]
    .into_iter()
    .collect();
    if let Some(schema) = &test.postgres_schema {
        pairs.insert("GATEHOUSE_DATABASE_SCHEMA".to_owned(), schema.clone());
    }
    pairs.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let file = data_dir.join("gatehouse.toml");
    Config::load(file.exists().then_some(file.as_path()), pairs).unwrap()
}

impl TestApp {
    pub async fn spawn(test: &TestDatabase) -> TestApp {
        Self::spawn_with_key(test, &MasterKey::generate()).await
    }

    /// A second instance on the same database must share the master key.
    pub async fn spawn_with_key(test: &TestDatabase, master_key: &MasterKey) -> TestApp {
        Self::spawn_with(test, master_key, &[]).await
    }

    /// With extra `GATEHOUSE_*` settings over the test configuration.
    pub async fn spawn_with(
        test: &TestDatabase,
        master_key: &MasterKey,
        extra: &[(&str, &str)],
    ) -> TestApp {
        Self::spawn_with_clock(test, master_key, extra, None).await
    }

    /// As [`Self::spawn_with`], on a `ManualClock` the test moves (it starts at the wall
    /// clock's now, so JWT libraries that read the system clock agree with it).
    pub async fn spawn_with_clock(
        test: &TestDatabase,
        master_key: &MasterKey,
        extra: &[(&str, &str)],
        clock: Option<std::sync::Arc<gatehouse_domain::ManualClock>>,
    ) -> TestApp {
        Self::spawn_with_file(test, master_key, None, extra, clock).await
    }

    /// As [`Self::spawn_with_clock`], with `file` as the configuration file (TOML: what has no
    /// environment form, such as `[[identity_providers]]`).
    pub async fn spawn_with_file(
        test: &TestDatabase,
        master_key: &MasterKey,
        file: Option<&str>,
        extra: &[(&str, &str)],
        clock: Option<std::sync::Arc<gatehouse_domain::ManualClock>>,
    ) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        if let Some(text) = file {
            std::fs::write(data_dir.path().join("gatehouse.toml"), text).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let mut settings = vec![("GATEHOUSE_ISSUER", base_url.as_str())];
        settings.extend_from_slice(extra);
        let config = test_config(test, master_key, data_dir.path(), &settings);
        let application: App = match &clock {
            Some(clock) => app::build_with_clock(config, clock.clone()).await.unwrap(),
            None => app::build(config).await.unwrap(),
        };
        let database = application.database.clone();
        let keys = application.keys.clone();
        let admin_keys = application.admin_keys.clone();
        let oauth = application.oauth.clone();
        let clients = application.clients.clone();
        let sweeper = application.sweeper.clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            gatehouse::server::serve(application, listener, async {
                let _ = stop.await;
            })
            .await
            .unwrap();
        });
        TestApp {
            base_url,
            http: reqwest::Client::new(),
            database,
            keys,
            admin_keys,
            oauth,
            clients,
            clock,
            sweeper,
            shutdown: Some(shutdown),
            server: Some(server),
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// POSTs JSON (with a bearer token when given) and reads a JSON answer (`Null` for none).
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    /// PATCHes JSON (with a bearer token when given) and reads a JSON answer.
    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, token, Some(body)).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get_auth(
        &self,
        path: &str,
        token: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    /// Signs up and returns the tokens answer.
    pub async fn sign_up(&self, email: &str, password: &str) -> serde_json::Value {
        let (status, body) = self
            .post(
                "/v1/auth/sign-up",
                None,
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body["tokens"].clone()
    }

    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.post(
            "/v1/auth/sign-in",
            None,
            serde_json::json!({ "email": email, "password": password }),
        )
        .await
    }

    /// An admin API key made through the same service the CLI uses.
    pub async fn admin_key(&self) -> String {
        let context = gatehouse_domain::principal::RequestContext::default();
        self.admin_keys.create("tests", &context).await.unwrap().1
    }

    /// Registers a client through the same service the CLI uses; answers (client_id, secret).
    pub async fn client(
        &self,
        request: gatehouse_domain::oauth::clients::NewClient,
    ) -> (String, Option<String>) {
        let admin = gatehouse_domain::principal::AdminPrincipal::system();
        let context = gatehouse_domain::principal::RequestContext::default();
        let (client, secret) = self.clients.create_client(&admin, request, &context).await.unwrap();
        (client.client_id, secret)
    }

    /// POSTs a form, with HTTP Basic client credentials when given.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

async fn read(response: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

/// A password that passes the default policy.
pub const STRONG_PASSWORD: &str = "Quasar-trail-mix-81!";
pub const OTHER_STRONG_PASSWORD: &str = "Velvet-orbit-lantern-27?";

/// A cuttable network path to the test Redis (`FaultProxy`) and its `redis://` URL; `None`
/// (a skip) when no Redis is configured, a failure under `CI=true`.
pub async fn redis_behind_a_fault_proxy() -> Option<(gatehouse_store::testing::FaultProxy, String)>
{
    let Some(redis_url) = gatehouse_store::testing::redis_url().unwrap() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs the Redis suites");
        eprintln!("skipped: set GATEHOUSE_TEST_REDIS_URL");
        return None;
    };
    let upstream = reqwest::Url::parse(&redis_url).unwrap();
    let upstream = format!("{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap_or(6379));
    let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
    let proxy = gatehouse_store::testing::FaultProxy::start(upstream).await.unwrap();
    let url = format!("redis://{}", proxy.address());
    Some((proxy, url))
}
