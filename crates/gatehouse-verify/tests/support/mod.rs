//! A stand-in issuer for the verifier's tests: a real HTTP server on an ephemeral port
//! serving discovery, a JWKS of keys generated here with aws-lc-rs (what the test publishes,
//! changeable mid-test), and RFC 7662 introspection; it counts the requests it answers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const AUDIENCE: &str = "https://api.example";
pub const CLIENT_ID: &str = "orders-api";
pub const CLIENT_SECRET: &str = "gtc_s3cret/with+symbols";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key that signs compact JWS, and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    pub jwk: Value,
    signer: Signer,
}

impl TestKey {
    pub fn es256(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]),
            "y": b64(&point[33..65]), "kid": kid, "alg": "ES256", "use": "sig" });
        TestKey { kid: kid.into(), alg: "ES256", jwk, signer: Signer::Ec(pair) }
    }

    pub fn rs256(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let jwk = json!({ "kty": "RSA", "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()), "kid": kid, "alg": "RS256" });
        TestKey { kid: kid.into(), alg: "RS256", jwk, signer: Signer::Rsa(pair) }
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
            "kid": kid, "alg": "EdDSA" });
        TestKey { kid: kid.into(), alg: "EdDSA", jwk, signer: Signer::Ed(pair) }
    }

    /// An access token: `{"alg", "typ": "at+jwt", "kid"}` over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({ "alg": self.alg, "typ": "at+jwt", "kid": self.kid }), claims)
    }

    /// Any header over `claims`, signed by this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&self.signature(input.as_bytes())))
    }

    pub fn signature(&self, input: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut signature).unwrap();
                signature
            }
            Signer::Ec(pair) => pair.sign(&SystemRandom::new(), input).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(input).as_ref().to_vec(),
        }
    }
}

#[derive(Default)]
struct IssuerState {
    issuer: String,
    published: Mutex<Vec<Value>>,
    cache_control: Mutex<Option<String>>,
    /// 200, or the status the JWKS endpoint fails with.
    jwks_status: AtomicU16,
    answers: Mutex<HashMap<String, Value>>,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
    introspections: AtomicUsize,
}

/// The stand-in issuer. Stops when dropped.
pub struct TestIssuer {
    pub url: String,
    state: Arc<IssuerState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIssuer {
    /// Serves with `keys` published.
    pub async fn start(keys: &[&TestKey]) -> TestIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IssuerState {
            issuer: url.clone(),
            published: Mutex::new(keys.iter().map(|key| key.jwk.clone()).collect()),
            jwks_status: AtomicU16::new(200),
            ..IssuerState::default()
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/introspect", post(introspect))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestIssuer { url, state, server }
    }

    /// A verifier for this issuer and [`AUDIENCE`], with the crate's defaults otherwise.
    pub fn verifier(&self) -> gatehouse_verify::VerifierBuilder {
        gatehouse_verify::Verifier::builder(&self.url).audience(AUDIENCE)
    }

    /// Claims of a valid access token: this issuer, [`AUDIENCE`], five minutes to live.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({ "iss": self.url, "sub": "usr_1", "aud": AUDIENCE, "exp": now + 300, "iat": now,
            "jti": "at_1", "scope": "orders:read profile" })
    }

    /// `claims()` with some members replaced (`null` removes one).
    pub fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.published.lock().unwrap() = keys.iter().map(|key| key.jwk.clone()).collect();
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    pub fn fail_jwks_with(&self, status: u16) {
        self.state.jwks_status.store(status, Ordering::SeqCst);
    }

    /// What introspecting `token` answers (anything else is `{"active": false}`).
    pub fn answer_introspection(&self, token: &str, answer: Value) {
        self.state.answers.lock().unwrap().insert(token.to_owned(), answer);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "issuer": state.issuer,
        "jwks_uri": format!("{}/jwks", state.issuer),
        "introspection_endpoint": format!("{}/introspect", state.issuer),
    }))
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(state.jwks_status.load(Ordering::SeqCst)).unwrap();
    if status != StatusCode::OK {
        return status.into_response();
    }
    let keys = state.published.lock().unwrap().clone();
    let mut response = Json(json!({ "keys": keys })).into_response();
    if let Some(value) = state.cache_control.lock().unwrap().as_deref() {
        response.headers_mut().insert(header::CACHE_CONTROL, value.parse().unwrap());
    }
    response
}

/// RFC 7662 for one confidential client, whose credentials arrive form-encoded in HTTP Basic.
async fn introspect(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    let encode = |text: &str| url_encode(text);
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(CLIENT_ID), encode(CLIENT_SECRET)))
    );
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&expected) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" })))
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = state.answers.lock().unwrap().get(&token).cloned();
    Json(answer.unwrap_or_else(|| json!({ "active": false }))).into_response()
}

/// `application/x-www-form-urlencoded` of one value, written out here so the test does not
/// share the verifier's encoder.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
