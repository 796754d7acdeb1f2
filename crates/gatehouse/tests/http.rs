//! The HTTP surface of the foundation, through the real router on an ephemeral port, on both
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::{MasterKey, PublicKeySet};
use gatehouse_domain::principal::{AdminPrincipal, RequestContext};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use support::TestApp;

backend_tests!(
    health_and_readiness,
    readiness_names_the_failed_database,
    jwks_publishes_the_signing_key_that_signs_tokens,
    a_token_from_one_instance_verifies_with_another_instances_jwks,
    rotation_keeps_the_old_key_published,
    errors_are_problem_json_with_request_ids,
    metrics_count_requests_by_route,
    openapi_describes_the_api,
    the_api_answers_cors_only_for_listed_origins,
    a_rotation_reaches_every_instance_before_its_key_signs,
);

async fn health_and_readiness(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    for header in ["x-request-id", "x-content-type-options", "x-frame-options"] {
        assert!(response.headers().contains_key(header), "{header}");
    }
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({ "status": "ok" })
    );
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["database"], "ok");
    app.stop().await;
}

async fn readiness_names_the_failed_database(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    // A real fault: the pool is closed under the running server.
    app.database.close().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["failed"], serde_json::json!(["database"]));
    assert_eq!(body["checks"]["database"], "failed");
    // Liveness is not readiness: the process still runs.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.stop().await;
}

fn validation() -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    serde_json::json!({ "sub": "usr_test", "exp": now + 900, "iat": now })
}

async fn jwks_publishes_the_signing_key_that_signs_tokens(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let jwks: serde_json::Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "no private member in JWKS");

    let signer = app.keys.active_signer().await.unwrap();
    assert_eq!(keys[0]["kid"], signer.kid());
    let token = signer.sign("at+jwt", &claims()).unwrap();
    let verified: serde_json::Value = PublicKeySet::from_jwks(&jwks)
        .unwrap()
        .verify(&token, Some("at+jwt"), &validation())
        .unwrap();
    assert_eq!(verified["sub"], "usr_test");
    app.stop().await;
}

async fn a_token_from_one_instance_verifies_with_another_instances_jwks(test: TestDatabase) {
    let master_key = MasterKey::generate();
    let first = TestApp::spawn_with_key(&test, &master_key).await;
    let second = TestApp::spawn_with_key(&test, &master_key).await;
    let token = first.keys.active_signer().await.unwrap().sign("at+jwt", &claims()).unwrap();
    let (_, jwks) = second.get_json("/.well-known/jwks.json").await;
    let verified: serde_json::Value = PublicKeySet::from_jwks(&jwks)
        .unwrap()
        .verify(&token, Some("at+jwt"), &validation())
        .unwrap();
    assert_eq!(verified["sub"], "usr_test");
    first.stop().await;
    second.stop().await;
}

async fn rotation_keeps_the_old_key_published(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let old_token = app.keys.active_signer().await.unwrap().sign("at+jwt", &claims()).unwrap();
    let rotated =
        app.keys.rotate(&AdminPrincipal::system(), &RequestContext::default()).await.unwrap();
    let (_, jwks) = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], rotated.kid);
    let keys = PublicKeySet::from_jwks(&jwks).unwrap();
    let old: serde_json::Value = keys.verify(&old_token, Some("at+jwt"), &validation()).unwrap();
    assert_eq!(old["sub"], "usr_test");
    let new_token = app.keys.active_signer().await.unwrap().sign("at+jwt", &claims()).unwrap();
    assert!(keys.verify::<serde_json::Value>(&new_token, Some("at+jwt"), &validation()).is_ok());
    app.stop().await;
}

async fn errors_are_problem_json_with_request_ids(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let cases: Vec<(reqwest::Method, &str, StatusCode, &str)> = vec![
        (reqwest::Method::GET, "/no/such/page", StatusCode::NOT_FOUND, "not_found"),
        (reqwest::Method::POST, "/healthz", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            reqwest::Method::DELETE,
            "/.well-known/jwks.json",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, code) in cases {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .body("x".repeat(10))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code);
        assert_eq!(body["status"], status.as_u16());
        for field in ["type", "title", "detail"] {
            assert!(body[field].is_string(), "{field} in {body}");
        }
    }
    // A request id sent by a proxy is kept, so logs line up across hops.
    let response =
        app.http.get(app.url("/healthz")).header("x-request-id", "proxy-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "proxy-123");
    // An oversized body never reaches a handler as a 5xx: it is refused with a 4xx. Sent over a
    // raw connection, because the server may answer before reading the whole body and close the
    // connection — a client still writing then sees a broken pipe instead of the answer.
    for (path, expected) in [("/healthz", 405), ("/v1/auth/sign-in", 413)] {
        let status = oversized_post(&app, path).await;
        assert_eq!(status, expected, "POST {path} with 1 MiB");
    }
    app.stop().await;
}

/// Declares a 1 MiB JSON body, sends the first 128 KiB of it (more than the 64 KiB limit) and
/// returns the status the server answers with.
async fn oversized_post(app: &TestApp, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may stop reading once it has refused the body; a failed write is expected then.
    let _ = stream.write_all(&vec![b'a'; 128 * 1024]).await;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to POST {path}: {text:?}"))
}

async fn metrics_count_requests_by_route(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/page").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let healthz = text
        .lines()
        .find(|line| line.starts_with("http_requests_total") && line.contains("route=\"/healthz\""))
        .unwrap_or_else(|| panic!("no /healthz counter in\n{text}"));
    assert!(healthz.contains("status=\"200\"") && healthz.ends_with(" 3"), "{healthz}");
    assert!(text.contains("route=\"unmatched\""), "unknown paths share one label");
    assert!(!text.contains("/no/such/page"), "raw paths never become labels");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    app.stop().await;
}

async fn openapi_describes_the_api(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"] {
        assert!(document["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    assert!(document["components"]["schemas"].get("Problem").is_some());
    app.stop().await;
}

/// Redis, when configured, is checked by readiness, but its outage does not make an instance
/// unready (it would take every instance out of the load balancer at once): a cut network
/// path shows as `unavailable` in the body, the answer stays 200; it comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_failed_redis() {
    let Some((proxy, proxied)) = support::redis_behind_a_fault_proxy().await else { return };
    let test = TestDatabase::sqlite().await.unwrap();
    let app =
        TestApp::spawn_with(&test, &MasterKey::generate(), &[("GATEHOUSE_REDIS_URL", &proxied)])
            .await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!((status, &body["checks"]["redis"]), (StatusCode::OK, &serde_json::json!("ok")));

    proxy.cut();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["redis"], "unavailable", "{body}");
    assert_eq!(body["failed"], serde_json::json!([]));
    assert_eq!(body["checks"]["database"], "ok");
    proxy.restore();
    let mut checks = 0;
    loop {
        let (_, body) = app.get_json("/readyz").await;
        if body["checks"]["redis"] == "ok" {
            break;
        }
        checks += 1;
        assert!(checks < 50, "Redis did not come back: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// PostgreSQL gone (a cut network path): requests that need it answer 503 problem+json with
/// `Retry-After` within the pool's acquire timeout (2 s), not after a long queue; `/readyz`
/// says the database failed; when the path is back the pool recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_quickly_and_recovers() {
    let Some(test) = TestDatabase::postgres().await.unwrap() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs the PostgreSQL suites");
        eprintln!("skipped: set GATEHOUSE_TEST_POSTGRES_URL");
        return;
    };
    let url = reqwest::Url::parse(&test.url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
    let proxy = gatehouse_store::testing::FaultProxy::start(upstream).await.unwrap();
    let mut proxied = url.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(proxy.address().port())).unwrap();
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_DATABASE_URL", proxied.as_str())],
    )
    .await;
    app.sign_up("pg@example.com", support::STRONG_PASSWORD).await;
    let (client_id, secret) = app
        .client(gatehouse_domain::oauth::clients::NewClient {
            name: "Outage".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            ..Default::default()
        })
        .await;
    let secret = secret.unwrap();
    let (status, issued) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let access_token = issued["access_token"].as_str().unwrap().to_owned();
    let mut browser = support::oauth_browser::Browser::new(&app.base_url);
    let login = browser.get("/login").await;

    proxy.cut();
    let started = std::time::Instant::now();
    let answer = app
        .http
        .post(app.url("/v1/auth/sign-in"))
        .json(
            &serde_json::json!({ "email": "pg@example.com", "password": support::STRONG_PASSWORD }),
        )
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers().contains_key("retry-after"));
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable", "{problem}");
    assert!(waited < std::time::Duration::from_millis(4500), "a 503 after {waited:?}");
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["failed"], serde_json::json!(["database"]));
    // The OAuth token endpoint answers in its own format, with when to come back.
    let answer = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "no-such-code"),
            ("redirect_uri", "https://app.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    let (status, retry_after) = (answer.status(), answer.headers().contains_key("retry-after"));
    let error: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(retry_after);
    assert_eq!(error["error"], "temporarily_unavailable", "{error}");
    // A live token is never reported inactive because its revocation cannot be read.
    let (status, introspected) = app
        .post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", &access_token)])
        .await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE || introspected["active"] == true,
        "{status} {introspected}"
    );
    // The hosted sign-in form: a 503 page that says when to come back too.
    let page = browser.sign_in(&login, "pg@example.com", support::STRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(page.retry_after.is_some());

    proxy.restore();
    let mut attempts = 0;
    loop {
        let (status, _) = app.sign_in("pg@example.com", support::STRONG_PASSWORD).await;
        if status == StatusCode::OK {
            break;
        }
        attempts += 1;
        assert!(attempts < 30, "the pool did not recover: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.get_json("/readyz").await.0, StatusCode::OK);
    app.stop().await;
}

/// Hosted-page routes declared outside `pages/` (browser forms, not API operations).
const HOSTED_PAGE_ROUTES: &[(&str, &str)] = &[
    ("/consent", "post"),
    ("/device", "get"),
    ("/device", "post"),
    ("/oauth2/end_session", "post"),
];

/// Every `(path, method)` the HTTP crate's routers declare with `.route("…", get(…).post(…))`,
/// outside the hosted pages (`pages/`, `browser/`). Read from the source, so a new route cannot
/// be forgotten in the OpenAPI document.
fn declared_api_routes() -> Vec<(String, String)> {
    fn visit(directory: &std::path::Path, routes: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "pages" && name != "browser" {
                    visit(&path, routes);
                }
            } else if name.ends_with(".rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                for (start, _) in source.match_indices(".route(") {
                    let rest = &source[start + ".route(".len()..];
                    let Some(open) = rest.find('"') else { continue };
                    let Some(close) = rest[open + 1..].find('"') else { continue };
                    let route = &rest[open + 1..open + 1 + close];
                    // The arguments end where the `.route(` parenthesis closes.
                    let mut depth = 1;
                    let mut end = rest.len();
                    for (index, character) in rest.char_indices() {
                        match character {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = index;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let arguments = &rest[open + 1 + close..end];
                    for method in ["get", "post", "put", "patch", "delete"] {
                        let called =
                            arguments.match_indices(&format!("{method}(")).any(|(at, _)| {
                                at == 0
                                    || !arguments.as_bytes()[at - 1].is_ascii_alphanumeric()
                                        && arguments.as_bytes()[at - 1] != b'_'
                            });
                        if called {
                            routes.push((route.to_owned(), method.to_owned()));
                        }
                    }
                }
            }
        }
    }
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gatehouse-http/src");
    let mut routes = Vec::new();
    visit(&source, &mut routes);
    routes.retain(|(path, method)| {
        !HOSTED_PAGE_ROUTES.iter().any(|(page, verb)| page == path && verb == method)
    });
    routes.sort();
    routes.dedup();
    routes
}

/// `/openapi.json` describes every operation of the first-party, admin and OAuth API (the
/// schemathesis run in `.ci/run` can only test what it documents), and every first-party
/// operation documents the errors it can answer as `application/problem+json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_api_route() {
    let test = TestDatabase::sqlite().await.unwrap();
    let app = TestApp::spawn(&test).await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let routes = declared_api_routes();
    assert!(routes.len() > 60, "the source scan found only {routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|(path, method)| document["paths"][path.as_str()][method.as_str()].is_null())
        .collect();
    assert!(missing.is_empty(), "routes missing from /openapi.json: {missing:?}");
    for (path, method) in routes.iter().filter(|(path, _)| path.starts_with("/v1/")) {
        let responses = &document["paths"][path.as_str()][method.as_str()]["responses"];
        assert!(!responses["429"].is_null(), "{method} {path} documents no 429");
        for (status, response) in responses.as_object().unwrap() {
            if status.starts_with('4') {
                assert!(
                    response["content"].get("application/problem+json").is_some(),
                    "{method} {path} {status} is not documented as problem+json"
                );
            }
        }
    }
    for (path, method) in [("/oauth2/token", "post"), ("/oauth2/authorize", "get")] {
        assert!(!document["paths"][path][method].is_null(), "{method} {path}");
    }
    app.stop().await;
}

/// Regression (#19, finding 8): production answers carry `Strict-Transport-Security` (two
/// years, subdomains), on the API, the documents and the hosted pages alike; development
/// answers do not (it would pin HTTPS on localhost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_transport_security_only_in_production() {
    let test = TestDatabase::sqlite().await.unwrap();
    // One database keeps one master key (it wraps the data keys).
    let key = MasterKey::generate();
    let production = TestApp::spawn_with(&test, &key, &[("GATEHOUSE_MODE", "production")]).await;
    for path in ["/healthz", "/.well-known/jwks.json", "/login", "/no-such-page"] {
        let response = production.get(path).await;
        assert_eq!(
            response.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some("max-age=63072000; includeSubDomains"),
            "{path}"
        );
    }
    production.stop().await;
    let development = TestApp::spawn_with_key(&test, &key).await;
    for path in ["/healthz", "/.well-known/jwks.json", "/login"] {
        let response = development.get(path).await;
        assert!(!response.headers().contains_key("strict-transport-security"), "{path}");
    }
    development.stop().await;
}

/// `GATEHOUSE_CORS_ALLOWED_ORIGINS`: a listed origin's preflight is answered (cacheable, with
/// credentials) and its answers carry its own origin; another origin gets no CORS header at
/// all, so its page cannot read the answer. Without the setting, `/v1` has no CORS.
async fn the_api_answers_cors_only_for_listed_origins(test: TestDatabase) {
    let master_key = MasterKey::generate();
    let app = TestApp::spawn_with(
        &test,
        &master_key,
        &[
            ("GATEHOUSE_CORS_ALLOWED_ORIGINS", "https://app.example.com,http://localhost:5173"),
            ("GATEHOUSE_CORS_MAX_AGE_SECONDS", "600"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, app.url("/v1/auth/sign-in"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(headers["access-control-max-age"], "600");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST") && methods.contains("DELETE"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    assert!(refused.headers().get("access-control-allow-credentials").is_none());

    // A real call from the listed origin: the answer (here a 401 problem) is readable by it.
    let answer = http
        .get(app.url("/v1/me"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example.com");
    assert!(answer.headers().get_all("vary").iter().any(|value| value == "origin"));
    let exposed = answer.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    let other = http.get(app.url("/v1/me")).header("origin", "https://app.example.com.evil").send();
    assert!(other.await.unwrap().headers().get("access-control-allow-origin").is_none());
    app.stop().await;

    // Off by default.
    let app = TestApp::spawn_with_key(&test, &master_key).await;
    let answer = http
        .get(app.url("/v1/me"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(answer.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

/// Two instances on one database and one clock, with the cluster's rotation delay (the
/// default on PostgreSQL): a rotation publishes the new key at once, every instance keeps
/// signing with the old one until the delay is over and then both switch together; at every
/// moment a token of either instance is accepted by the other (no 401 because of the rotation).
async fn a_rotation_reaches_every_instance_before_its_key_signs(test: TestDatabase) {
    let master_key = MasterKey::generate();
    let start = support::mfa::wall_clock();
    let clock = std::sync::Arc::new(gatehouse_domain::ManualClock::new(start));
    // Instances behind one load balancer share the issuer; the delay is PostgreSQL's default
    // (the test configuration sets 0 for the single-instance tests).
    let extra = [
        ("GATEHOUSE_ISSUER", "http://gatehouse.test"),
        ("GATEHOUSE_SIGNING_ROTATION_DELAY_SECONDS", "35"),
    ];
    let first = TestApp::spawn_with_clock(&test, &master_key, &extra, Some(clock.clone())).await;
    let second = TestApp::spawn_with_clock(&test, &master_key, &extra, Some(clock.clone())).await;
    first.sign_up("rota@example.com", support::STRONG_PASSWORD).await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwks_kids = |app: &TestApp| {
        let url = app.url("/.well-known/jwks.json");
        let http = app.http.clone();
        async move {
            let jwks: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|key| key["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // Signs in on `from`, checks the token on `to` (and on `from`); answers its kid.
    let exchange = |from: &TestApp, to: &TestApp| {
        let (from, to) = (from.base_url.clone(), to.base_url.clone());
        async move {
            let http = reqwest::Client::new();
            let tokens: serde_json::Value = http
                .post(format!("{from}/v1/auth/sign-in"))
                .json(&serde_json::json!({ "email": "rota@example.com", "password": support::STRONG_PASSWORD }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let token = tokens["access_token"].as_str().unwrap().to_owned();
            for base in [&to, &from] {
                let me =
                    http.get(format!("{base}/v1/me")).bearer_auth(&token).send().await.unwrap();
                let status = me.status();
                let body = me.text().await.unwrap();
                assert_eq!(status, StatusCode::OK, "refused at {base}: {body}");
            }
            token
        }
    };
    let old = kid(&exchange(&first, &second).await);
    assert_eq!(kid(&exchange(&second, &first).await), old);

    let context = RequestContext::default();
    let rotated = first.keys.rotate(&AdminPrincipal::system(), &context).await.unwrap();
    assert_ne!(rotated.kid, old);
    // Published at once by the rotating instance, signing not yet anywhere.
    assert!(jwks_kids(&first).await.contains(&rotated.kid));
    assert_eq!(kid(&exchange(&first, &second).await), old);
    assert_eq!(kid(&exchange(&second, &first).await), old);
    // Past the other instance's cache: it publishes the new key too, still signing the old.
    clock.advance(31);
    assert!(jwks_kids(&second).await.contains(&rotated.kid));
    assert_eq!(kid(&exchange(&second, &first).await), old);
    assert_eq!(kid(&exchange(&first, &second).await), old);
    // The delay over: both sign with the new key, and both accept each other's tokens.
    clock.advance(5);
    assert_eq!(kid(&exchange(&first, &second).await), rotated.kid);
    assert_eq!(kid(&exchange(&second, &first).await), rotated.kid);
    // The old key stays published for its tokens.
    assert!(jwks_kids(&second).await.contains(&old));
    first.stop().await;
    second.stop().await;
}

/// Redis (the limiter's store) down: password sign-ins fail closed — 503 with `Retry-After`,
/// not unlimited guesses — while the general API budget lets requests through; with
/// `GATEHOUSE_RATE_LIMIT_FAIL_OPEN=true` sign-ins go through too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_fail_closed_while_the_limiter_is_down_unless_told_otherwise() {
    for fail_open in ["false", "true"] {
        let Some((proxy, proxied)) = support::redis_behind_a_fault_proxy().await else { return };
        let test = TestDatabase::sqlite().await.unwrap();
        let prefix = format!("gh-test-{}:", gatehouse_crypto::new_id("t"));
        let settings = [
            ("GATEHOUSE_REDIS_URL", proxied.as_str()),
            ("GATEHOUSE_REDIS_KEY_PREFIX", prefix.as_str()),
            ("GATEHOUSE_RATE_LIMIT_ENABLED", "true"),
            ("GATEHOUSE_RATE_LIMIT_FAIL_OPEN", fail_open),
        ];
        let app = TestApp::spawn_with(&test, &MasterKey::generate(), &settings).await;
        let tokens = app.sign_up("limits@example.com", support::STRONG_PASSWORD).await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let (status, _) = app.sign_in("limits@example.com", support::STRONG_PASSWORD).await;
        assert_eq!(status, StatusCode::OK);

        proxy.cut();
        let answer = app
            .http
            .post(app.url("/v1/auth/sign-in"))
            .json(&serde_json::json!({ "email": "limits@example.com", "password": support::STRONG_PASSWORD }))
            .send()
            .await
            .unwrap();
        if fail_open == "false" {
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(answer.headers().contains_key("retry-after"));
            let problem: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(problem["code"], "service_unavailable");
        } else {
            assert_eq!(answer.status(), StatusCode::OK, "failing open");
        }
        // The general budget lets the API through either way.
        let (status, me) = app.get_auth("/v1/me", &token).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        app.stop().await;
    }
}
