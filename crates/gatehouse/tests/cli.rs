//! The `gatehouse` binary as an operator runs it: start-up on both backends, the files it
//! creates, exit codes of bad configuration, graceful shutdown, and the CLI commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/binary.rs"]
mod binary;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use binary::{run, serve};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use tokio::process::Child;

/// Small Argon2id parameters and an ephemeral port; the rest is what an operator would set.
fn base_env() -> Vec<(String, String)> {
    [
        ("GATEHOUSE_HTTP_ADDR", "127.0.0.1:0"),
        ("GATEHOUSE_PASSWORD_MEMORY_KIB", "1024"),
        ("GATEHOUSE_PASSWORD_ITERATIONS", "1"),
        ("GATEHOUSE_PASSWORD_PARALLELISM", "1"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

fn env_for(test: &TestDatabase) -> Vec<(String, String)> {
    let mut env = base_env();
    env.push(("GATEHOUSE_DATABASE_URL".into(), test.url.clone()));
    if let Some(schema) = &test.postgres_schema {
        env.push(("GATEHOUSE_DATABASE_SCHEMA".into(), schema.clone()));
    }
    env
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(mut child: Child) -> String {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await.unwrap();
    }
    assert!(exit.success(), "exit after SIGTERM: {exit:?}\n{stderr}");
    stderr
}

async fn jwks(url: &str) -> serde_json::Value {
    reqwest::get(format!("{url}/.well-known/jwks.json")).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_configuration_serve_creates_its_data_directory() {
    let directory = tempfile::tempdir().unwrap();
    let env = base_env();
    let (child, url) = serve(directory.path(), &env).await;
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let first_jwks = jwks(&url).await;
    assert_eq!(first_jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(first_jwks["keys"][0]["alg"], "RS256", "RS256 is the default");
    // With port 0 and no issuer configured, the issuer is the address actually bound.
    let discovery: serde_json::Value =
        reqwest::get(format!("{url}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(discovery["issuer"], url.as_str());

    let data = directory.path().join("data");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert!(data.join("gatehouse.db").exists());
    assert!(data.join("gatehouse.db-wal").exists(), "SQLite runs in WAL mode");
    let stderr = terminate(child).await;
    assert!(stderr.contains("development master key"), "the generated key is announced:\n{stderr}");
    assert!(
        !stderr.contains(std::fs::read_to_string(data.join("master.key")).unwrap().trim()),
        "the key is never logged"
    );

    // A restart reuses the key file and the stored signing key.
    let (child, url) = serve(directory.path(), &env).await;
    assert_eq!(jwks(&url).await, first_jwks);
    terminate(child).await;
}

backend_tests!(serve_migrate_and_rotate_keys, admin_keys_are_listed_and_revoked_from_the_cli);

async fn serve_migrate_and_rotate_keys(test: TestDatabase) {
    let directory = tempfile::tempdir().unwrap();
    let mut env = env_for(&test);
    env.push(("GATEHOUSE_MASTER_KEY".into(), gatehouse_crypto::MasterKey::generate().encode()));

    let (code, stdout, stderr) = run(directory.path(), &env, &["migrate", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let migrated: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let every_version: Vec<i64> =
        gatehouse_store::migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(migrated["applied_versions"], serde_json::json!(every_version));

    let (child, url) = serve(directory.path(), &env).await;
    let ready: serde_json::Value =
        reqwest::get(format!("{url}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let before = jwks(&url).await;
    let old_kid = before["keys"][0]["kid"].as_str().unwrap().to_owned();

    let (code, stdout, stderr) = run(directory.path(), &env, &["keys", "rotate", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let rotated: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_ne!(rotated["kid"], old_kid.as_str());

    let (code, stdout, _) = run(directory.path(), &env, &["keys", "list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let states: Vec<(String, bool)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| (key["state"].as_str().unwrap().to_owned(), key["published"].as_bool().unwrap()))
        .collect();
    assert_eq!(states, [("active".to_owned(), true), ("retired".to_owned(), true)]);
    terminate(child).await;

    // A fresh process publishes both keys at once.
    let (child, url) = serve(directory.path(), &env).await;
    let after = jwks(&url).await;
    let kids: Vec<&str> =
        after["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [rotated["kid"].as_str().unwrap(), old_kid.as_str()]);
    terminate(child).await;
}

/// `gatehouse admin-key list|revoke` and `keys rotate` as an operator runs them: a table or
/// JSON, a revoked key refused by the running server at once, an unknown id refused with exit
/// code 2, and the system actor in the audit events they write.
async fn admin_keys_are_listed_and_revoked_from_the_cli(test: TestDatabase) {
    let directory = tempfile::tempdir().unwrap();
    let mut env = env_for(&test);
    env.push(("GATEHOUSE_MASTER_KEY".into(), gatehouse_crypto::MasterKey::generate().encode()));
    let mut made = Vec::new();
    for name in ["ops", "ci"] {
        let (code, stdout, stderr) =
            run(directory.path(), &env, &["admin-key", "create", "--name", name, "--json"]).await;
        assert_eq!(code, 0, "{stderr}");
        made.push(serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap());
    }
    let (ops, ci) = (&made[0], &made[1]);
    let ci_id = ci["id"].as_str().unwrap();

    let (code, stdout, stderr) =
        run(directory.path(), &env, &["admin-key", "list", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let keys = listed["data"].as_array().unwrap();
    let mut ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![ops["id"].as_str().unwrap(), ci_id];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert!(keys.iter().all(|k| k["revoked_at"].is_null() && k.get("key_digest").is_none()));
    let (code, table, _) = run(directory.path(), &env, &["admin-key", "list"]).await;
    assert_eq!(code, 0);
    assert!(table.starts_with("id "), "{table}");
    assert!(table.contains(ci_id) && table.contains(" ci\n"), "{table}");
    for key in &made {
        assert!(
            !stdout.contains(key["key"].as_str().unwrap())
                && !table.contains(key["key"].as_str().unwrap())
        );
    }

    let (code, _, stderr) =
        run(directory.path(), &env, &["admin-key", "revoke", "ak_unknown"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no admin API key has the id ak_unknown"), "{stderr}");
    let (code, stdout, stderr) = run(directory.path(), &env, &["admin-key", "revoke", ci_id]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("revoked admin API key {ci_id} (ci)")), "{stdout}");
    let (code, stdout, _) =
        run(directory.path(), &env, &["admin-key", "revoke", ci_id, "--json"]).await;
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(again["already_revoked"], true);
    assert!(again["revoked_at"].as_i64().is_some());
    let (code, _, stderr) = run(directory.path(), &env, &["keys", "rotate"]).await;
    assert_eq!(code, 0, "{stderr}");

    let (child, url) = serve(directory.path(), &env).await;
    let client = reqwest::Client::new();
    let get = |secret: &serde_json::Value, path: &str| {
        client.get(format!("{url}{path}")).bearer_auth(secret["key"].as_str().unwrap()).send()
    };
    assert_eq!(get(ci, "/v1/admin/users").await.unwrap().status(), 401);
    let listed: serde_json::Value =
        get(ops, "/v1/admin/admin-keys").await.unwrap().json().await.unwrap();
    let revoked = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == ci_id).unwrap();
    assert!(revoked["revoked_at"].as_i64().is_some());
    for action in ["admin_key.revoked", "signing_key.rotated"] {
        let log: serde_json::Value = get(ops, &format!("/v1/admin/audit-log?action={action}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = log["data"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{action}: {log}");
        assert_eq!(events[0]["actor_type"], "system", "{action}");
    }
    terminate(child).await;
}

/// Bad configuration stops start-up with exit code 2 and names the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_2_naming_the_setting() {
    let directory = tempfile::tempdir().unwrap();
    let missing_key_file = directory.path().join("absent.key").display().to_string();
    let bad_key_file = directory.path().join("bad.key");
    std::fs::write(&bad_key_file, "too-short").unwrap();
    let bad_key_file = bad_key_file.display().to_string();
    let config_file = directory.path().join("gatehouse.toml");
    std::fs::write(&config_file, "[http]\nadress = \"127.0.0.1:1\"\n").unwrap();
    let config_file = config_file.display().to_string();

    // (environment, arguments, the setting the error must name)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("GATEHOUSE_UNKNOWN_THING", "1")], vec!["serve"], "GATEHOUSE_UNKNOWN_THING"),
        (vec![("GATEHOUSE_HTTP_ADDR", "nowhere")], vec!["serve"], "GATEHOUSE_HTTP_ADDR"),
        (vec![("GATEHOUSE_DATABASE_URL", "mysql://db")], vec!["migrate"], "GATEHOUSE_DATABASE_URL"),
        (vec![("GATEHOUSE_MODE", "production")], vec!["serve"], "GATEHOUSE_MASTER_KEY"),
        (
            vec![
                ("GATEHOUSE_MODE", "production"),
                ("GATEHOUSE_MASTER_KEY", "x"),
                ("GATEHOUSE_ISSUER", "http://id.example.com"),
            ],
            vec!["serve"],
            "GATEHOUSE_ISSUER",
        ),
        (
            vec![("GATEHOUSE_MASTER_KEY_FILE", missing_key_file.as_str())],
            vec!["serve"],
            "GATEHOUSE_MASTER_KEY_FILE",
        ),
        (
            vec![("GATEHOUSE_MASTER_KEY_FILE", bad_key_file.as_str())],
            vec!["serve"],
            "GATEHOUSE_MASTER_KEY_FILE",
        ),
        (vec![("GATEHOUSE_MASTER_KEY", "not-a-key")], vec!["serve"], "GATEHOUSE_MASTER_KEY"),
        (vec![], vec!["--config", config_file.as_str(), "serve"], "adress"),
    ];
    for (pairs, arguments, setting) in cases {
        let mut env = base_env();
        env.extend(pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        let (code, _, stderr) = run(directory.path(), &env, &arguments).await;
        assert_eq!(code, 2, "{pairs:?}: {stderr}");
        assert!(stderr.contains(setting), "{pairs:?}: stderr does not name {setting}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        !directory.path().join("data").exists()
            || std::fs::read_dir(directory.path().join("data")).unwrap().count() == 0,
        "refused start-ups write no key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_needs_no_configuration() {
    let directory = tempfile::tempdir().unwrap();
    let env = vec![("GATEHOUSE_NONSENSE".to_owned(), "1".to_owned())];
    let (code, stdout, _) = run(directory.path(), &env, &["version", "--json"]).await;
    assert_eq!(code, 0);
    let version: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

/// `gatehouse user create` and `gatehouse admin-key create` are all an operator needs to reach
/// the API of a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_users_and_admin_keys() {
    let directory = tempfile::tempdir().unwrap();
    let mut env = base_env();
    env.push(("GATEHOUSE_MASTER_KEY".into(), gatehouse_crypto::MasterKey::generate().encode()));
    let password = "Quasar-trail-mix-81!";
    let (code, stdout, stderr) = run(
        directory.path(),
        &env,
        &[
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--password",
            password,
            "--admin",
            "--verified",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let user: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(user["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(user["email"], "ops@example.com");

    let (code, _, stderr) = run(
        directory.path(),
        &env,
        &["user", "create", "--email", "weak@example.com", "--password", "short"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("password_too_weak") && stderr.contains("too_short"), "{stderr}");
    let (code, _, stderr) = run(
        directory.path(),
        &env,
        &["user", "create", "--email", "ops@example.com", "--password", password],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("email_taken"), "{stderr}");

    let (code, stdout, stderr) =
        run(directory.path(), &env, &["admin-key", "create", "--name", "ci", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let key: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let secret = key["key"].as_str().unwrap();

    let (child, url) = serve(directory.path(), &env).await;
    let client = reqwest::Client::new();
    let users: serde_json::Value = client
        .get(format!("{url}/v1/admin/users"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["data"][0]["id"], user["id"]);
    let sign_in = client
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&serde_json::json!({ "email": "ops@example.com", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 200);
    let stderr = terminate(child).await;
    assert!(!stderr.contains(secret) && !stderr.contains(password), "secrets never reach the logs");
}

/// `[[clients]]` in the configuration file are created at start and kept in line with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_declared_in_the_file_are_applied_at_start() {
    let directory = tempfile::tempdir().unwrap();
    let mut env = base_env();
    env.push(("GATEHOUSE_MASTER_KEY".into(), gatehouse_crypto::MasterKey::generate().encode()));
    let secret = "a-declared-secret-that-is-long-enough-123";
    let file = directory.path().join("gatehouse.toml");
    let write = |scopes: &str| {
        std::fs::write(
            &file,
            format!(
                "[[clients]]\nclient_id = \"reports\"\nname = \"Reports\"\nsecret = \"{secret}\"\ngrant_types = [\"client_credentials\"]\nscopes = [{scopes}]\n"
            ),
        )
        .unwrap();
    };
    write("\"reports:read\"");
    let config = file.display().to_string();
    env.push(("GATEHOUSE_CONFIG".into(), config));
    let token = |url: String, scope: &'static str| async move {
        reqwest::Client::new()
            .post(format!("{url}/oauth2/token"))
            .basic_auth("reports", Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send()
            .await
            .unwrap()
            .status()
    };
    let (child, url) = serve(directory.path(), &env).await;
    assert_eq!(token(url.clone(), "reports:read").await, 200);
    assert_eq!(token(url, "reports:write").await, 400);
    terminate(child).await;

    write("\"reports:read\", \"reports:write\"");
    let (child, url) = serve(directory.path(), &env).await;
    assert_eq!(token(url, "reports:write").await, 200, "the declaration was re-applied");
    terminate(child).await;

    std::fs::write(&file, "[[clients]]\nclient_id = \"x\"\nname = \"No secret\"\ngrant_types = [\"client_credentials\"]\n").unwrap();
    let (code, _, stderr) = run(directory.path(), &env, &["serve"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("clients[0]"), "{stderr}");
}

/// `gatehouse user import` reads JSON Lines in batches: valid rows are imported, taken emails
/// skipped, invalid lines reported by number; imported password hashes sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_imported_in_bulk() {
    let directory = tempfile::tempdir().unwrap();
    let mut env = base_env();
    env.push(("GATEHOUSE_MASTER_KEY".into(), gatehouse_crypto::MasterKey::generate().encode()));
    let file = directory.path().join("users.jsonl");
    let mut lines: Vec<String> =
        (0..2500).map(|index| format!(r#"{{"email":"user{index}@example.com"}}"#)).collect();
    lines.push(r#"{"email":"not-an-email"}"#.into());
    lines.push("this is not json".into());
    lines.push(r#"{"email":"user7@example.com"}"#.into());
    lines.push(
        r#"{"email":"legacy@example.com","password_hash":"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW","email_verified":true}"#
            .into(),
    );
    std::fs::write(&file, lines.join("\n")).unwrap();
    let path = file.display().to_string();
    let (code, stdout, stderr) = run(
        directory.path(),
        &env,
        &["user", "import", "--file", &path, "--batch-size", "1000", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (report["imported"].as_u64(), report["skipped"].as_u64()),
        (Some(2501), Some(1)),
        "{report}"
    );
    let invalid_lines: Vec<u64> = report["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry[0].as_u64().unwrap())
        .collect();
    assert_eq!(invalid_lines, [2501, 2502]);
    // Each imported user is a `user.created` event (the skipped duplicate is not).
    let (code, stdout, stderr) =
        run(directory.path(), &env, &["audit", "export", "--action", "user.created"]).await;
    assert_eq!(code, 0, "{stderr}");
    let created: Vec<serde_json::Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(created.len(), 2501);
    assert!(created.iter().all(|event| event["metadata"]["via"] == "import"));

    let (child, url) = serve(directory.path(), &env).await;
    let sign_in = reqwest::Client::new()
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&serde_json::json!({ "email": "legacy@example.com", "password": "U*U" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 200, "an imported bcrypt hash signs in");
    terminate(child).await;
}
