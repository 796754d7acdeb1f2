//! A local stand-in for GitHub's OAuth app endpoints and the two REST calls a sign-in makes,
//! in GitHub's own shapes, so a client written for github.com works against it unmodified:
//! - `GET /login/oauth/authorize` signs in the user the test chose (no login page) and sends
//!   the browser back with `code` and `state` (no `iss`, as GitHub). An unknown `client_id` is
//!   a 404 page; a `redirect_uri` outside the registered callback is sent to the registered
//!   callback with `error=redirect_uri_mismatch`, as GitHub documents.
//! - `POST /login/oauth/access_token` takes the client's credentials in the form or in HTTP
//!   Basic (RFC 6749 §2.3.1 encoding: what the `oauth2` crate's `BasicClient` sends by
//!   default), checks the code, its redirect URI and the PKCE S256 verifier, and answers JSON
//!   when asked (`Accept: application/json`), form-encoded otherwise. Refusals are HTTP 200
//!   with `{"error","error_description","error_uri"}`, as GitHub answers them.
//! - `GET /user` and `GET /user/emails` need `Authorization: Bearer|token <token>`; otherwise
//!   401 `{"message":"Bad credentials"}`. The emails API needs the `user:email` (or `user`)
//!   scope, else 404, as GitHub.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

pub const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
pub const CLIENT_SECRET: &str = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

/// One address of the emails API.
#[derive(Debug, Clone)]
pub struct GitHubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
    /// `"public"`, `"private"`, or none (GitHub's `null`).
    pub visibility: Option<String>,
}

impl GitHubEmail {
    pub fn new(email: &str, primary: bool, verified: bool) -> GitHubEmail {
        let visibility = primary.then(|| "private".to_owned());
        GitHubEmail { email: email.to_owned(), primary, verified, visibility }
    }
}

/// A GitHub user: the profile `GET /user` shows and the addresses `GET /user/emails` lists.
#[derive(Debug, Clone)]
pub struct GitHubUser {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    /// The public profile address: whatever the user chose to show, not necessarily verified.
    pub email: Option<String>,
    pub emails: Vec<GitHubEmail>,
}

impl GitHubUser {
    fn profile(&self, base_url: &str) -> Value {
        json!({
            "login": self.login,
            "id": self.id,
            "node_id": format!("MDQ6VXNlcj{}", self.id),
            "avatar_url": format!("{base_url}/avatars/u/{}?v=4", self.id),
            "gravatar_id": "",
            "url": format!("{base_url}/users/{}", self.login),
            "html_url": format!("{base_url}/{}", self.login),
            "type": "User",
            "site_admin": false,
            "name": self.name,
            "company": null,
            "blog": "",
            "location": null,
            "email": self.email,
            "hireable": null,
            "bio": null,
            "twitter_username": null,
            "public_repos": 2,
            "public_gists": 0,
            "followers": 1,
            "following": 0,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": "2024-11-02T10:12:51Z",
        })
    }

    fn emails(&self) -> Value {
        Value::Array(
            self.emails
                .iter()
                .map(|entry| {
                    json!({
                        "email": entry.email,
                        "primary": entry.primary,
                        "verified": entry.verified,
                        "visibility": entry.visibility,
                    })
                })
                .collect(),
        )
    }
}

/// A code handed out by the authorize endpoint, spent by its first exchange.
struct Grant {
    user_id: u64,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    scopes: Vec<String>,
}

#[derive(Default)]
struct World {
    /// The registered authorization callback URL.
    callback: Option<String>,
    /// Who is signed in at "github.com" in the browser.
    current_user: Option<u64>,
    users: HashMap<u64, GitHubUser>,
    grants: HashMap<String, Grant>,
    /// Access token → (user id, granted scopes).
    tokens: HashMap<String, (u64, Vec<String>)>,
    /// Set by the test: the next exchange is refused with `bad_verification_code`.
    refuse_next_exchange: bool,
    counter: u64,
    /// Every token request's way of authenticating the client: `"basic"` or `"form"`.
    client_authentications: Vec<&'static str>,
    /// Every REST call answered, as `"<path> <status>"`.
    api_calls: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    base_url: String,
    world: Arc<Mutex<World>>,
}

pub struct GitHub {
    pub base_url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

const ERROR_URI: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";

fn random_hex(world: &mut World, length: usize) -> String {
    world.counter += 1;
    let seed = format!("{}-{}-{:?}", world.counter, length, std::time::SystemTime::now());
    let digest = hex(&sha2::Sha256::digest(seed.as_bytes()));
    digest[..length].to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// GitHub's callback rule: the same scheme, host and port, and a path at or below the
/// registered one.
fn redirect_allowed(registered: &str, requested: &str) -> bool {
    let (Ok(registered), Ok(requested)) =
        (reqwest::Url::parse(registered), reqwest::Url::parse(requested))
    else {
        return false;
    };
    let base = registered.path().trim_end_matches('/');
    registered.scheme() == requested.scheme()
        && registered.host_str() == requested.host_str()
        && registered.port_or_known_default() == requested.port_or_known_default()
        && (requested.path() == registered.path()
            || requested.path().starts_with(&format!("{base}/")))
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn not_found_page() -> Response {
    let body = "<!DOCTYPE html><html><head><title>Page not found · GitHub</title></head>\
                <body><h1>404</h1><p>This is not the web page you are looking for.</p></body></html>";
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body)
        .into_response()
}

async fn authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = shared.world.lock().unwrap();
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return not_found_page();
    }
    let registered = world.callback.clone().expect("the test registers the callback first");
    let state = query.get("state").cloned().unwrap_or_default();
    let redirect_uri = query.get("redirect_uri").cloned();
    if let Some(requested) = &redirect_uri
        && !redirect_allowed(&registered, requested)
    {
        let back = with_query(
            &registered,
            &[
                ("error", "redirect_uri_mismatch"),
                (
                    "error_description",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
                (
                    "error_uri",
                    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch",
                ),
                ("state", &state),
            ],
        );
        return found(&back);
    }
    let user_id = world.current_user.expect("the test chooses who is signed in at GitHub");
    let code_challenge = match query.get("code_challenge_method").map(String::as_str) {
        None | Some("S256") => query.get("code_challenge").cloned(),
        Some(_) => {
            return (StatusCode::BAD_REQUEST, "unsupported code_challenge_method").into_response();
        }
    };
    let scopes = query
        .get("scope")
        .map(|text| {
            text.split([' ', ',']).filter(|scope| !scope.is_empty()).map(str::to_owned).collect()
        })
        .unwrap_or_default();
    let code = random_hex(&mut world, 20);
    world.grants.insert(
        code.clone(),
        Grant { user_id, redirect_uri: redirect_uri.clone(), code_challenge, scopes },
    );
    let target = redirect_uri.unwrap_or(registered);
    found(&with_query(&target, &[("code", &code), ("state", &state)]))
}

/// The client's credentials: HTTP Basic (each part form-urlencoded, RFC 6749 §2.3.1), or the
/// form's `client_id` and `client_secret`.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String, &'static str)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |part: &str| {
            url::form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
        };
        return Some((decode(id)?, decode(secret)?, "basic"));
    }
    Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone(), "form"))
}

fn token_answer(headers: &HeaderMap, pairs: Vec<(&str, String)>) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("application/json"));
    if wants_json {
        let object: serde_json::Map<String, Value> =
            pairs.into_iter().map(|(key, value)| (key.to_owned(), Value::String(value))).collect();
        (StatusCode::OK, Json(Value::Object(object))).into_response()
    } else {
        let body = serde_urlencoded::to_string(&pairs).unwrap();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

fn token_error(headers: &HeaderMap, error: &str, description: &str, anchor: &str) -> Response {
    token_answer(
        headers,
        vec![
            ("error", error.to_owned()),
            ("error_description", description.to_owned()),
            ("error_uri", format!("{ERROR_URI}/#{anchor}")),
        ],
    )
}

fn bad_verification_code(headers: &HeaderMap) -> Response {
    token_error(
        headers,
        "bad_verification_code",
        "The code passed is incorrect or expired.",
        "bad-verification-code",
    )
}

fn pkce_s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

async fn access_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut world = shared.world.lock().unwrap();
    let credentials = client_credentials(&headers, &form);
    if let Some((_, _, how)) = &credentials {
        world.client_authentications.push(how);
    }
    if !credentials.is_some_and(|(id, secret, _)| id == CLIENT_ID && secret == CLIENT_SECRET) {
        return token_error(
            &headers,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            "incorrect-client-credentials",
        );
    }
    // A code is spent by its first exchange, whatever the outcome.
    let Some(grant) = form.get("code").and_then(|code| world.grants.remove(code)) else {
        return bad_verification_code(&headers);
    };
    if std::mem::take(&mut world.refuse_next_exchange) {
        return bad_verification_code(&headers);
    }
    if let Some(requested) = form.get("redirect_uri")
        && grant.redirect_uri.as_ref() != Some(requested)
    {
        return token_error(
            &headers,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            "redirect-uri-mismatch2",
        );
    }
    if let Some(challenge) = &grant.code_challenge
        && form.get("code_verifier").map(|verifier| pkce_s256(verifier)).as_ref() != Some(challenge)
    {
        return bad_verification_code(&headers);
    }
    let token = format!("gho_{}", random_hex(&mut world, 36));
    world.tokens.insert(token.clone(), (grant.user_id, grant.scopes.clone()));
    token_answer(
        &headers,
        vec![
            ("access_token", token),
            ("token_type", "bearer".to_owned()),
            ("scope", grant.scopes.join(",")),
        ],
    )
}

fn bad_credentials() -> Response {
    let body = json!({
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    });
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

/// The user and scopes of the request's token (`Bearer` or GitHub's older `token` scheme).
fn bearer(world: &World, headers: &HeaderMap) -> Option<(GitHubUser, Vec<String>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let (user_id, scopes) = world.tokens.get(token.trim())?;
    Some((world.users.get(user_id)?.clone(), scopes.clone()))
}

async fn user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = shared.world.lock().unwrap();
    let answer = match bearer(&world, &headers) {
        Some((user, _)) => Json(user.profile(&shared.base_url)).into_response(),
        None => bad_credentials(),
    };
    world.api_calls.push(format!("/user {}", answer.status().as_u16()));
    answer
}

async fn user_emails(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = shared.world.lock().unwrap();
    let answer = emails_answer(&world, &headers);
    world.api_calls.push(format!("/user/emails {}", answer.status().as_u16()));
    answer
}

fn emails_answer(world: &World, headers: &HeaderMap) -> Response {
    let Some((user, scopes)) = bearer(world, headers) else {
        return bad_credentials();
    };
    if !scopes.iter().any(|scope| scope == "user:email" || scope == "user") {
        let body = json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user",
            "status": "404",
        });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Json(user.emails()).into_response()
}

impl GitHub {
    pub async fn start() -> GitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared { base_url: base_url.clone(), world: Arc::default() };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(user_emails))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        GitHub { base_url, shared, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The `[[identity_providers]]` entry that points a `github` provider here (`extra`: more
    /// lines, such as `trust_email_verified = true`).
    pub fn provider_toml(&self, id: &str, extra: &str) -> String {
        format!(
            r#"
[[identity_providers]]
id = "{id}"
kind = "github"
name = "GitHub"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorization_url = "{authorize}"
token_url = "{token}"
userinfo_url = "{user}"
emails_url = "{emails}"
{extra}
"#,
            authorize = self.url("/login/oauth/authorize"),
            token = self.url("/login/oauth/access_token"),
            user = self.url("/user"),
            emails = self.url("/user/emails"),
        )
    }

    /// The OAuth app's registered authorization callback URL.
    pub fn register_callback(&self, url: &str) {
        self.shared.world.lock().unwrap().callback = Some(url.to_owned());
    }

    /// Adds (or replaces) a user and makes them the one signed in at GitHub.
    pub fn sign_in_as(&self, user: GitHubUser) {
        let mut world = self.shared.world.lock().unwrap();
        world.current_user = Some(user.id);
        world.users.insert(user.id, user);
    }

    /// The next code exchange answers `bad_verification_code`, as an expired code would.
    pub fn refuse_next_exchange(&self) {
        self.shared.world.lock().unwrap().refuse_next_exchange = true;
    }

    /// How each token request so far authenticated the client (`"basic"` or `"form"`).
    pub fn client_authentications(&self) -> Vec<&'static str> {
        self.shared.world.lock().unwrap().client_authentications.clone()
    }

    /// The REST calls answered so far, as `"<path> <status>"`.
    pub fn api_calls(&self) -> Vec<String> {
        self.shared.world.lock().unwrap().api_calls.clone()
    }

    /// Codes handed out and not yet exchanged.
    pub fn outstanding_codes(&self) -> usize {
        self.shared.world.lock().unwrap().grants.len()
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}
