//! `TestApp`: the real application on an ephemeral port against a fresh database, with typed
//! helpers. Readiness comes from the bound listener, never from sleeps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse::app::{self, App};
use gatehouse::config::Config;
use gatehouse_crypto::MasterKey;
use gatehouse_store::testing::TestDatabase;

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub database: gatehouse_store::Database,
    pub keys: std::sync::Arc<gatehouse_domain::KeyService>,
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
    let mut pairs = vec![
        ("GATEHOUSE_DATABASE_URL".to_owned(), test.url.clone()),
        ("GATEHOUSE_DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("GATEHOUSE_MASTER_KEY".to_owned(), master_key.encode()),
        ("GATEHOUSE_HTTP_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_PASSWORD_MEMORY_KIB".to_owned(), "1024".to_owned()),
        ("GATEHOUSE_PASSWORD_ITERATIONS".to_owned(), "1".to_owned()),
        ("GATEHOUSE_PASSWORD_PARALLELISM".to_owned(), "1".to_owned()),
        ("GATEHOUSE_SIGNING_ALGORITHM".to_owned(), "ES256".to_owned()),
    ];
    if let Some(schema) = &test.postgres_schema {
        pairs.push(("GATEHOUSE_DATABASE_SCHEMA".to_owned(), schema.clone()));
    }
    pairs.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    Config::load(None, pairs).unwrap()
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
        let data_dir = tempfile::tempdir().unwrap();
        let config = test_config(test, master_key, data_dir.path(), extra);
        let application: App = app::build(config).await.unwrap();
        let database = application.database.clone();
        let keys = application.keys.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
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
