//! OAuth Client ID Metadata Documents on both backends: with the setting on, a `client_id`
//! that is a URL names the client's JSON document, served here by a local HTTP server; the
//! code flow with PKCE and a refresh work for it, the consent page names where it comes from,
//! the document is fetched once and again after its `max-age`; a document that does not name
//! itself, a redirect URI it does not list, the setting off and the SSRF rule each refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gatehouse_crypto::MasterKey;
use gatehouse_domain::ManualClock;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    a_client_described_by_its_document_signs_users_in,
    documents_that_do_not_hold_are_refused,
    documents_are_fetched_only_when_on_and_allowed,
);

const CALLBACK: &str = "http://127.0.0.1:3000/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A client's web server: serves `/client.json` (the document set by the test) and counts
/// the fetches.
#[derive(Clone)]
struct ClientSite {
    base: String,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl ClientSite {
    async fn start() -> ClientSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let site = ClientSite {
            base,
            document: Arc::new(Mutex::new(Value::Null)),
            fetches: Arc::default(),
        };
        let state = site.clone();
        let app = axum::Router::new().route(
            "/client.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let body = state.document.lock().unwrap().to_string();
                    ([("content-type", "application/json"), ("cache-control", "max-age=120")], body)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        site
    }

    fn client_id(&self) -> String {
        format!("{}/client.json", self.base)
    }

    fn serve(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A valid document for this site.
    fn good_document(&self) -> Value {
        json!({
            "client_id": self.client_id(),
            "client_name": "Desk Agent",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile offline_access",
        })
    }
}

const ON: &[(&str, &str)] = &[
    ("GATEHOUSE_OAUTH_CLIENT_ID_METADATA_DOCUMENTS", "true"),
    ("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true"),
];

fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str) -> String {
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid offline_access"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    url.to_string()
}

async fn a_client_described_by_its_document_signs_users_in(test: TestDatabase) {
    let site = ClientSite::start().await;
    site.serve(site.good_document());
    let clock = Arc::new(ManualClock::new(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            as i64,
    ));
    let app =
        TestApp::spawn_with_clock(&test, &MasterKey::generate(), ON, Some(clock.clone())).await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["client_id_metadata_document_supported"], true);
    app.sign_up("agent-user@example.com", STRONG_PASSWORD).await;
    let client_id = site.client_id();

    let mut browser = Browser::new(&app.base_url);
    let first = browser.get(&authorize_url(&app, &client_id, CALLBACK)).await;
    let mut page = browser.follow(first).await;
    page = browser.sign_in(&page, "agent-user@example.com", STRONG_PASSWORD).await;
    // Nobody vetted this client: the user is asked, and told where it comes from.
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
    assert!(page.body.contains("Desk Agent (127.0.0.1)"), "{}", page.body);
    let answer = browser.consent(&page, "allow").await;
    let location = answer.location.unwrap();
    assert!(location.starts_with(CALLBACK), "{location}");
    let code = query(&location)["code"].clone();
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("client_id", &client_id),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id_token = gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims::<Value>(
        tokens["id_token"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(id_token["aud"], client_id.as_str());
    let (status, refreshed) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // One fetch served the whole flow: the stored copy is the cache.
    assert_eq!(site.fetches(), 1);

    // After the document's max-age it is fetched again, and a change in it counts.
    clock.advance(121);
    let mut changed = site.good_document();
    changed["client_name"] = json!("Desk Agent 2");
    site.serve(changed);
    let again = browser.get(&authorize_url(&app, &client_id, CALLBACK)).await;
    let again = browser.follow(again).await;
    assert_eq!(site.fetches(), 2);
    assert!(again.location.as_deref().is_some_and(|to| to.starts_with(CALLBACK)), "consented once");
    let admin = app.admin_key().await;
    let (status, listed) = app.get_auth("/v1/admin/clients", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let stored = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|client| client["client_id"] == client_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(stored["name"], "Desk Agent 2 (127.0.0.1)");
    assert_eq!(stored["public"], true);
    app.stop().await;
}

/// The error page an authorization request for `document` gets.
async fn refused(app: &TestApp, site: &ClientSite, document: Value, redirect: &str) -> String {
    site.serve(document);
    let mut browser = Browser::new(&app.base_url);
    let page = browser.get(&authorize_url(app, &site.client_id(), redirect)).await;
    assert!(page.location.is_none(), "redirected: {:?}", page.location);
    assert!(page.status.is_client_error(), "{}", page.status);
    page.body
}

async fn documents_that_do_not_hold_are_refused(test: TestDatabase) {
    let site = ClientSite::start().await;
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), ON).await;
    let mut other_id = site.good_document();
    other_id["client_id"] = json!("https://elsewhere.example.com/client.json");
    let body = refused(&app, &site, other_id, CALLBACK).await;
    assert!(body.contains("application is not registered"), "{body}");
    let mut with_secret = site.good_document();
    with_secret["client_secret"] = json!("a-secret-in-a-public-document");
    assert!(
        refused(&app, &site, with_secret, CALLBACK).await.contains("application is not registered")
    );
    let mut confidential = site.good_document();
    confidential["token_endpoint_auth_method"] = json!("client_secret_basic");
    assert!(
        refused(&app, &site, confidential, CALLBACK)
            .await
            .contains("application is not registered")
    );
    assert!(
        refused(&app, &site, json!("not an object"), CALLBACK)
            .await
            .contains("application is not registered")
    );
    // A valid document, but a redirect URI it does not list.
    let body = refused(&app, &site, site.good_document(), "http://127.0.0.1:3000/elsewhere").await;
    assert!(!body.contains("application is not registered"), "the client exists: {body}");
    assert!(body.contains("redirect_uri"), "{body}");
    // Nothing was kept of the refused documents: only the valid one is a client.
    let admin = app.admin_key().await;
    let (_, listed) = app.get_auth("/v1/admin/clients", &admin).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|client| client["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![site.client_id().as_str()], "{listed}");
    // A public client cannot authenticate with a secret either way.
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some((&site.client_id(), "guess")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn documents_are_fetched_only_when_on_and_allowed(test: TestDatabase) {
    let site = ClientSite::start().await;
    site.serve(site.good_document());
    // Off (the default): a URL is just an unknown client_id.
    let master_key = MasterKey::generate();
    let off = TestApp::spawn_with_key(&test, &master_key).await;
    let (_, discovery) = off.get_json("/.well-known/openid-configuration").await;
    assert!(discovery.get("client_id_metadata_document_supported").is_none());
    let body = refused(&off, &site, site.good_document(), CALLBACK).await;
    assert!(body.contains("application is not registered"), "{body}");
    off.stop().await;
    // On, but the document is on a private address the SSRF rule refuses.
    let guarded = TestApp::spawn_with(
        &test,
        &master_key,
        &[("GATEHOUSE_OAUTH_CLIENT_ID_METADATA_DOCUMENTS", "true")],
    )
    .await;
    let body = refused(&guarded, &site, site.good_document(), CALLBACK).await;
    assert!(body.contains("application is not registered"), "{body}");
    guarded.stop().await;
    assert_eq!(site.fetches(), 0, "nothing was fetched");
}
