//! `gatehouse db export | import` as an operator runs them (the real binary): an installation
//! on SQLite moves to the other database (PostgreSQL in CI) and back, and afterwards every
//! user signs in, every refresh token refreshes, every client and admin key authenticates and
//! sealed fields open; an import that cannot load its archive refuses it and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::path::Path;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::binary::run;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    an_installation_moves_to_another_database_and_back,
    an_import_refuses_what_it_cannot_load_and_writes_nothing,
);

/// Every instance of one installation answers under one issuer, whichever database it is on.
const ISSUER: &str = "http://localhost:9";

/// What an operator sets for a command: the database, the master key, small Argon2 costs.
fn env_for(test: &TestDatabase, key: &MasterKey, data_dir: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("GATEHOUSE_DATABASE_URL", test.url.as_str()),
        ("GATEHOUSE_DATA_DIR", &data_dir.display().to_string()),
        ("GATEHOUSE_MASTER_KEY", &key.encode()),
        ("GATEHOUSE_ISSUER", ISSUER),
        ("GATEHOUSE_PASSWORD_MEMORY_KIB", "1024"),
        ("GATEHOUSE_PASSWORD_ITERATIONS", "1"),
        ("GATEHOUSE_PASSWORD_PARALLELISM", "1"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    if let Some(schema) = &test.postgres_schema {
        env.push(("GATEHOUSE_DATABASE_SCHEMA".into(), schema.clone()));
    }
    env
}

async fn spawn(test: &TestDatabase, key: &MasterKey) -> TestApp {
    TestApp::spawn_with(test, key, &[("GATEHOUSE_ISSUER", ISSUER)]).await
}

/// `gatehouse --json db <verb> --<flag> FILE`; answers (exit code, stdout JSON or text, stderr).
async fn db(
    env: &[(String, String)],
    directory: &Path,
    verb: &str,
    file: &Path,
) -> (i32, Value, String) {
    let flag = if verb == "export" { "--output" } else { "--input" };
    let (code, stdout, stderr) =
        run(directory, env, &["--json", "db", verb, flag, file.to_str().unwrap()]).await;
    (code, serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)), stderr)
}

/// What the test keeps of the installation to check it after each move.
struct Installation {
    users: Vec<(String, String)>,
    refresh_tokens: Vec<String>,
    client: (String, String),
    admin_key: String,
}

async fn populate(app: &TestApp) -> Installation {
    let mut users = Vec::new();
    let mut refresh_tokens = Vec::new();
    for index in 0..4 {
        let email = format!("person{index}@example.com");
        let tokens = app.sign_up(&email, STRONG_PASSWORD).await;
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
        let id = tokens["user"]["id"].as_str().map(str::to_owned);
        users.push((email, id.unwrap_or_default()));
    }
    let (client_id, secret) = app
        .client(NewClient {
            name: "Billing".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["billing:read".into()],
            ..NewClient::default()
        })
        .await;
    let admin_key = app.admin_key().await;
    Installation { users, refresh_tokens, client: (client_id, secret.unwrap()), admin_key }
}

/// Everything the installation holds still works on `app`: passwords (peppered hashes), refresh
/// tokens (keyed digests), the client's secret, the admin key, sealed addresses. The refresh
/// tokens rotate, so the installation keeps the new ones.
async fn check(app: &TestApp, installation: &mut Installation) {
    for (email, _) in &installation.users {
        let (status, body) = app.sign_in(email, STRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{email}: {body}");
    }
    for token in &mut installation.refresh_tokens {
        let (status, body) =
            app.post("/v1/auth/refresh", None, json!({ "refresh_token": token })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        *token = body["refresh_token"].as_str().unwrap().to_owned();
    }
    let (client_id, secret) = &installation.client;
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some((client_id, secret)),
            &[("grant_type", "client_credentials"), ("scope", "billing:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, listed) = app.get_auth("/v1/admin/users?limit=100", &installation.admin_key).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let mut emails: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|user| user["email"].as_str())
        .collect();
    emails.sort_unstable();
    let expected: Vec<&str> = installation.users.iter().map(|(email, _)| email.as_str()).collect();
    assert_eq!(emails, expected);
}

async fn an_installation_moves_to_another_database_and_back(target: TestDatabase) {
    let key = MasterKey::generate();
    let directory = tempfile::tempdir().unwrap();
    let archive = directory.path().join("gatehouse.archive");

    // An installation on the embedded SQLite, with users, tokens, a client and an admin key.
    let source = TestDatabase::sqlite().await.unwrap();
    let app = spawn(&source, &key).await;
    let mut installation = populate(&app).await;
    app.stop().await;

    let (code, exported, stderr) =
        db(&env_for(&source, &key, directory.path()), directory.path(), "export", &archive).await;
    assert_eq!(code, 0, "{exported} {stderr}");
    assert_eq!(exported["tables"]["users"], 4);
    assert_eq!(exported["tables"]["oauth_clients"], 1);
    assert!(exported["rows"].as_u64().unwrap() > 10, "{exported}");
    // A gzip archive whose secrets stay sealed: no address, no secret in the clear.
    let text = gunzip(&archive);
    assert!(
        text.starts_with("{\"format\":\"gatehouse-archive\",\"version\":1,"),
        "{}",
        &text[..80]
    );
    for secret in
        [installation.users[0].0.as_str(), &installation.client.1, &installation.admin_key]
    {
        assert!(!text.contains(secret), "the archive holds a secret in the clear");
    }
    assert!(!text.contains(&installation.refresh_tokens[0]));
    assert!(!directory.path().join("gatehouse.archive.partial").exists());

    // Into the other database (PostgreSQL in CI), migrated by the import itself.
    let (code, imported, stderr) =
        db(&env_for(&target, &key, directory.path()), directory.path(), "import", &archive).await;
    assert_eq!(code, 0, "{imported} {stderr}");
    assert_eq!(imported["rows"], exported["rows"]);
    assert_eq!(imported["tables"], exported["tables"]);
    let app = spawn(&target, &key).await;
    check(&app, &mut installation).await;
    app.stop().await;

    // And back, into a new SQLite file.
    let back = directory.path().join("back.archive");
    let (code, _, stderr) =
        db(&env_for(&target, &key, directory.path()), directory.path(), "export", &back).await;
    assert_eq!(code, 0, "{stderr}");
    let sqlite = TestDatabase::sqlite().await.unwrap();
    let (code, imported, stderr) =
        db(&env_for(&sqlite, &key, directory.path()), directory.path(), "import", &back).await;
    assert_eq!(code, 0, "{imported} {stderr}");
    let app = spawn(&sqlite, &key).await;
    check(&app, &mut installation).await;
    app.stop().await;
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

async fn user_rows(test: &TestDatabase) -> i64 {
    let database = gatehouse_store::Database::connect(
        &test.url,
        &gatehouse_store::DatabaseOptions {
            postgres_schema: test.postgres_schema.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let count = match &database {
        gatehouse_store::Database::Sqlite(sqlite) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&sqlite.pool).await.unwrap()
        }
        gatehouse_store::Database::Postgres(postgres) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&postgres.pool)
                .await
                .unwrap()
        }
    };
    database.close().await;
    count
}

async fn an_import_refuses_what_it_cannot_load_and_writes_nothing(target: TestDatabase) {
    let key = MasterKey::generate();
    let directory = tempfile::tempdir().unwrap();
    let archive = directory.path().join("gatehouse.archive");
    let source = TestDatabase::sqlite().await.unwrap();
    let app = spawn(&source, &key).await;
    populate(&app).await;
    app.stop().await;
    let (code, _, stderr) =
        db(&env_for(&source, &key, directory.path()), directory.path(), "export", &archive).await;
    assert_eq!(code, 0, "{stderr}");
    let env = env_for(&target, &key, directory.path());

    // Another master key could open none of the archive's secrets: refused before any write.
    let other = env_for(&target, &MasterKey::generate(), directory.path());
    let (code, _, stderr) = db(&other, directory.path(), "import", &archive).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("master key"), "{stderr}");

    // A truncated archive (its last rows and end line lost): refused, and nothing is left.
    let text = gunzip(&archive);
    let lines: Vec<&str> = text.lines().collect();
    let truncated = directory.path().join("truncated.jsonl");
    std::fs::write(&truncated, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let (code, _, stderr) = db(&env, directory.path(), "import", &truncated).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("truncated") || stderr.contains("end line"), "{stderr}");
    assert_eq!(user_rows(&target).await, 0);

    // A row that does not fit its columns: refused with its line, nothing left.
    let altered = directory.path().join("altered.jsonl");
    // The last row (the line before the end line) loses a value.
    let mut altered_lines: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    let last_row = altered_lines.len() - 2;
    let mut values: Vec<Value> = serde_json::from_str(&altered_lines[last_row]).unwrap();
    values.pop();
    altered_lines[last_row] = Value::Array(values).to_string();
    std::fs::write(&altered, altered_lines.join("\n") + "\n").unwrap();
    let (code, _, stderr) = db(&env, directory.path(), "import", &altered).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line ") && stderr.contains("columns"), "{stderr}");
    assert_eq!(user_rows(&target).await, 0);

    // Not an archive at all.
    let other_file = directory.path().join("notes.txt");
    std::fs::write(&other_file, "hello\n").unwrap();
    let (code, _, stderr) = db(&env, directory.path(), "import", &other_file).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a Gatehouse archive"), "{stderr}");

    // The whole archive loads after all that; a second import finds the database in use.
    let (code, _, stderr) = db(&env, directory.path(), "import", &archive).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(user_rows(&target).await, 4);
    let (code, _, stderr) = db(&env, directory.path(), "import", &archive).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(user_rows(&target).await, 4);
}
