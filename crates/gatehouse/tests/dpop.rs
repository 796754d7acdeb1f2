//! DPoP (RFC 9449): proofs at the token endpoint bind access tokens (`cnf.jkt`,
//! `token_type: DPoP`) and a public client's refresh tokens to the client's key; the
//! authorization code can be bound ahead (`dpop_jkt`, or a proof sent with the pushed
//! request); userinfo wants a fresh proof with each call (`ath`); introspection reports the
//! binding; a client can require DPoP; server nonces when configured; a first-party sign-in
//! with a proof binds the session, and the first-party API then wants a proof per call. The negative cases: a
//! replayed proof, wrong `htm`/`htu`, a stale `iat`, a forged signature, a private `jwk`,
//! another key than the one bound. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::jsonwebtoken::{self, Algorithm, EncodingKey, Header};
use gatehouse_crypto::{MasterKey, SigningAlgorithm, SigningKey};
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    proofs_bind_client_credentials_tokens_and_bad_proofs_are_refused,
    a_public_clients_code_flow_binds_its_tokens_to_its_key,
    userinfo_wants_a_proof_of_the_bound_key_with_each_call,
    the_server_can_require_its_nonces,
    a_first_party_sign_in_with_a_proof_binds_the_session,
);

const REDIRECT: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A client's DPoP key.
struct DpopKey {
    key: SigningKey,
}

impl DpopKey {
    fn new() -> DpopKey {
        DpopKey { key: SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap() }
    }

    fn jwk(&self) -> Value {
        let mut jwk = self.key.public_jwk();
        let object = jwk.as_object_mut().unwrap();
        object.remove("kid");
        object.remove("use");
        object.remove("alg");
        jwk
    }

    /// The RFC 7638 thumbprint, computed by jsonwebtoken (as a client library would).
    fn thumbprint(&self) -> String {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk()).unwrap();
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap()
    }

    /// A proof with `claims` as they are, in a header carrying `jwk` as it is (members
    /// jsonwebtoken's `Jwk` would drop included), signed by this key.
    fn sign(&self, claims: &Value, jwk: Value) -> String {
        use base64::Engine as _;
        let encode = |value: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(value).unwrap())
        };
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
        let input = format!("{}.{}", encode(&header), encode(claims));
        let encoding = EncodingKey::from_ec_der(&self.key.pkcs8_der());
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, Algorithm::ES256).unwrap();
        format!("{input}.{signature}")
    }

    /// A fresh, well-formed proof for `method` on `url` (with `ath` for `access_token`).
    fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        self.proof_with(method, url, access_token, None)
    }

    fn proof_with(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = json!({
            "jti": gatehouse_crypto::new_id("jti"),
            "htm": method,
            "htu": url,
            "iat": now(),
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(gatehouse_crypto::signing::sha256_base64url(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.sign(&claims, self.jwk())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The claims of a JWT, unverified (the tests read what the server put in its own tokens).
fn claims_of(token: &str) -> Value {
    gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap()
}

/// POSTs a form to `path` with Basic credentials (when given) and a `DPoP` header (when
/// given); answers the status, the `DPoP-Nonce` header and the body.
async fn post_with_proof(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    proof: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Option<String>, Value) {
    let mut request = app.http.post(app.url(path)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let nonce = response.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_owned());
    (status, nonce, response.json().await.unwrap())
}

/// GET `/oauth2/userinfo` with `Authorization: {scheme} {token}` and an optional proof;
/// answers the status, the `WWW-Authenticate` header and the body (Null when empty).
async fn userinfo(
    app: &TestApp,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut request = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (status, challenge, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn service_client() -> NewClient {
    NewClient {
        name: "Service".into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["reports:read".into()],
        ..NewClient::default()
    }
}

async fn proofs_bind_client_credentials_tokens_and_bad_proofs_are_refused(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (client_id, secret) = app.client(service_client()).await;
    let secret = secret.unwrap();
    let basic = Some((client_id.as_str(), secret.as_str()));
    let token_url = app.url("/oauth2/token");
    let grant = [("grant_type", "client_credentials")];

    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    let algorithms = discovery["dpop_signing_alg_values_supported"].as_array().unwrap();
    assert!(algorithms.contains(&json!("ES256")), "{discovery}");
    assert!(!algorithms.iter().any(|alg| alg.as_str().unwrap().starts_with("HS")));

    // A proof binds the token to the key.
    let key = DpopKey::new();
    let proof = key.proof("POST", &token_url, None);
    let (status, _, tokens) =
        post_with_proof(&app, "/oauth2/token", basic, Some(&proof), &grant).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access_token)["cnf"]["jkt"], key.thumbprint());

    // Introspection reports the binding.
    let (status, answer) =
        app.post_form("/oauth2/introspect", basic, &[("token", access_token)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(answer["cnf"]["jkt"], key.thumbprint());

    // Without a proof the token is a plain bearer token.
    let (status, _, plain) = post_with_proof(&app, "/oauth2/token", basic, None, &grant).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plain["token_type"], "Bearer");
    assert!(claims_of(plain["access_token"].as_str().unwrap()).get("cnf").is_none());

    // Refused, each with invalid_dpop_proof: ...
    let refused = |proof: String, why: &'static str| {
        let app = &app;
        async move {
            let (status, _, body) =
                post_with_proof(app, "/oauth2/token", basic, Some(&proof), &grant).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
            assert_eq!(body["error"], "invalid_dpop_proof", "{why}: {body}");
        }
    };
    // ... the same proof again (a replay),
    refused(proof.clone(), "replay").await;
    // ... another method or URI,
    refused(key.proof("GET", &token_url, None), "htm").await;
    refused(key.proof("POST", &app.url("/oauth2/introspect"), None), "htu").await;
    refused(key.proof("POST", "https://elsewhere.example/oauth2/token", None), "htu host").await;
    // ... a stale or future iat,
    let stale = json!({"jti": "stale-1", "htm": "POST", "htu": token_url, "iat": now() - 600});
    refused(key.sign(&stale, key.jwk()), "stale iat").await;
    let future = json!({"jti": "future-1", "htm": "POST", "htu": token_url, "iat": now() + 600});
    refused(key.sign(&future, key.jwk()), "future iat").await;
    // ... no jti,
    let no_jti = json!({"htm": "POST", "htu": token_url, "iat": now()});
    refused(key.sign(&no_jti, key.jwk()), "no jti").await;
    // ... a header naming another key than the one that signed,
    let other = DpopKey::new();
    let forged = json!({"jti": "forged-1", "htm": "POST", "htu": token_url, "iat": now()});
    refused(key.sign(&forged, other.jwk()), "signed by another key").await;
    // ... a jwk with its private part,
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("AAAA");
    let leaky = json!({"jti": "leaky-1", "htm": "POST", "htu": token_url, "iat": now()});
    refused(key.sign(&leaky, private_jwk), "private jwk").await;
    // ... a symmetric algorithm, and garbage.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.typ = Some("dpop+jwt".into());
    let hs = jsonwebtoken::encode(
        &hs_header,
        &json!({"jti": "hs-1", "htm": "POST", "htu": token_url, "iat": now()}),
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    refused(hs, "HS256").await;
    refused("not-a-jwt".to_owned(), "garbage").await;

    // A client registered with dpop_bound_access_tokens gets no token without a proof.
    let admin = app.admin_key().await;
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&admin),
            json!({
                "name": "Bound service",
                "grant_types": ["client_credentials"],
                "scopes": ["reports:read"],
                "dpop_bound_access_tokens": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["dpop_bound_access_tokens"], true, "{created}");
    let bound_id = created["client_id"].as_str().unwrap();
    let bound_secret = created["client_secret"].as_str().unwrap();
    let bound = Some((bound_id, bound_secret));
    let (status, _, body) = post_with_proof(&app, "/oauth2/token", bound, None, &grant).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");
    let proof = key.proof("POST", &token_url, None);
    let (status, _, body) =
        post_with_proof(&app, "/oauth2/token", bound, Some(&proof), &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    app.stop().await;
}

fn public_app() -> NewClient {
    NewClient {
        name: "Agent".into(),
        public: true,
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        skip_consent: true,
        ..NewClient::default()
    }
}

/// Signs in through the hosted pages and answers the code of an authorization request with
/// PKCE and `extra` parameters.
async fn authorization_code(
    app: &TestApp,
    browser: &mut Browser,
    client_id: &str,
    extra: &[(&str, &str)],
    signed_in: bool,
) -> String {
    let challenge = gatehouse_crypto::pkce_s256(VERIFIER);
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email offline_access")
        .append_pair("state", "s1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (name, value) in extra {
        url.query_pairs_mut().append_pair(name, value);
    }
    let first = browser.get(url.as_str()).await;
    let done = if signed_in {
        first
    } else {
        let login = browser.follow(first).await;
        browser.sign_in(&login, "agent@example.com", STRONG_PASSWORD).await
    };
    let location = done.location.clone().unwrap_or_else(|| panic!("{}", done.body));
    assert!(location.starts_with(REDIRECT), "{location}");
    query(&location)["code"].clone()
}

async fn exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    proof: Option<&str>,
) -> (StatusCode, Value) {
    let (status, _, body) = post_with_proof(
        app,
        "/oauth2/token",
        None,
        proof,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    (status, body)
}

async fn a_public_clients_code_flow_binds_its_tokens_to_its_key(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("agent@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app.client(public_app()).await;
    let token_url = app.url("/oauth2/token");
    let key = DpopKey::new();
    let other = DpopKey::new();
    let mut browser = Browser::new(&app.base_url);

    // dpop_jkt on authorize binds the code: a proof of another key cannot spend it, and
    // neither can a request without a proof (the code is not spent by these attempts).
    let code = authorization_code(
        &app,
        &mut browser,
        &client_id,
        &[("dpop_jkt", &key.thumbprint())],
        false,
    )
    .await;
    let (status, body) =
        exchange(&app, &client_id, &code, Some(&other.proof("POST", &token_url, None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let (status, body) = exchange(&app, &client_id, &code, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, tokens) =
        exchange(&app, &client_id, &code, Some(&key.proof("POST", &token_url, None))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"], key.thumbprint());
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The public client's refresh token is bound to the key: no proof, or another key's,
    // is refused, and the refused attempts do not burn it.
    let refresh = |proof: Option<String>, token: String| {
        let app = &app;
        let client_id = client_id.clone();
        async move {
            let (status, _, body) = post_with_proof(
                app,
                "/oauth2/token",
                None,
                proof.as_deref(),
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("refresh_token", &token),
                ],
            )
            .await;
            (status, body)
        }
    };
    let (status, body) = refresh(None, refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) =
        refresh(Some(other.proof("POST", &token_url, None)), refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, refreshed) =
        refresh(Some(key.proof("POST", &token_url, None)), refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["token_type"], "DPoP");
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );

    // A proof sent with the pushed request binds the code as dpop_jkt does.
    let challenge = gatehouse_crypto::pkce_s256(VERIFIER);
    let par_proof = key.proof("POST", &app.url("/oauth2/par"), None);
    let (status, _, pushed) = post_with_proof(
        &app,
        "/oauth2/par",
        None,
        Some(&par_proof),
        &[
            ("client_id", &client_id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid offline_access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("request_uri", pushed["request_uri"].as_str().unwrap());
    let done = browser.get(url.as_str()).await;
    let code =
        query(&done.location.clone().unwrap_or_else(|| panic!("{}", done.body)))["code"].clone();
    let (status, body) =
        exchange(&app, &client_id, &code, Some(&other.proof("POST", &token_url, None))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        exchange(&app, &client_id, &code, Some(&key.proof("POST", &token_url, None))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A malformed dpop_jkt is the client's error, sent back to it.
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("dpop_jkt", "short");
    let page = browser.get(url.as_str()).await;
    let location = page.location.clone().unwrap_or_else(|| panic!("{}", page.body));
    assert_eq!(query(&location)["error"], "invalid_request", "{location}");
    app.stop().await;
}

async fn userinfo_wants_a_proof_of_the_bound_key_with_each_call(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("agent@example.com", STRONG_PASSWORD).await;
    let (client_id, _) = app.client(public_app()).await;
    let token_url = app.url("/oauth2/token");
    let userinfo_url = app.url("/oauth2/userinfo");
    let key = DpopKey::new();
    let mut browser = Browser::new(&app.base_url);
    let code = authorization_code(&app, &mut browser, &client_id, &[], false).await;
    let (status, tokens) =
        exchange(&app, &client_id, &code, Some(&key.proof("POST", &token_url, None))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();

    let proof = key.proof("GET", &userinfo_url, Some(token));
    let (status, _, claims) = userinfo(&app, "DPoP", token, Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["email"], "agent@example.com");

    // Refused with 401 and a DPoP challenge: the bound token as a bearer token, ...
    let (status, challenge, _) = userinfo(&app, "Bearer", token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.starts_with("DPoP"), "{challenge}");
    // ... no proof, the same proof again, a proof without ath or for another token, another
    // key's proof, a proof for the token endpoint.
    let (status, challenge, _) = userinfo(&app, "DPoP", token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("algs="), "{challenge}");
    let (status, challenge, _) = userinfo(&app, "DPoP", token, Some(&proof)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    for (proof, why) in [
        (key.proof("GET", &userinfo_url, None), "no ath"),
        (key.proof("GET", &userinfo_url, Some("another.token.value")), "ath of another token"),
        (DpopKey::new().proof("GET", &userinfo_url, Some(token)), "another key"),
        (key.proof("POST", &token_url, Some(token)), "another endpoint"),
    ] {
        let (status, _, body) = userinfo(&app, "DPoP", token, Some(&proof)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    }

    // An unbound token cannot be passed off as a DPoP one, and stays a bearer token.
    let code = authorization_code(&app, &mut browser, &client_id, &[], true).await;
    let (_, plain) = exchange(&app, &client_id, &code, None).await;
    let plain = plain["access_token"].as_str().unwrap();
    let proof = key.proof("GET", &userinfo_url, Some(plain));
    let (status, _, _) = userinfo(&app, "DPoP", plain, Some(&proof)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, claims) = userinfo(&app, "Bearer", plain, None).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    app.stop().await;
}

async fn the_server_can_require_its_nonces(test: TestDatabase) {
    let app = TestApp::spawn_with(
        &test,
        &MasterKey::generate(),
        &[("GATEHOUSE_OAUTH_DPOP_REQUIRE_NONCE", "true")],
    )
    .await;
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert!(discovery["dpop_signing_alg_values_supported"].is_array());
    let (client_id, secret) = app.client(service_client()).await;
    let secret = secret.unwrap();
    let basic = Some((client_id.as_str(), secret.as_str()));
    let token_url = app.url("/oauth2/token");
    let grant = [("grant_type", "client_credentials")];
    let key = DpopKey::new();

    // A proof without a nonce: use_dpop_nonce, and the nonce to use.
    let proof = key.proof("POST", &token_url, None);
    let (status, nonce, body) =
        post_with_proof(&app, "/oauth2/token", basic, Some(&proof), &grant).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "use_dpop_nonce");
    let nonce = nonce.expect("a DPoP-Nonce header");
    // A made-up nonce is no better.
    let proof = key.proof_with("POST", &token_url, None, Some("made-up-nonce"));
    let (_, _, body) = post_with_proof(&app, "/oauth2/token", basic, Some(&proof), &grant).await;
    assert_eq!(body["error"], "use_dpop_nonce");
    // With the server's nonce: a bound token, and the nonce again for next time.
    let proof = key.proof_with("POST", &token_url, None, Some(&nonce));
    let (status, next, body) =
        post_with_proof(&app, "/oauth2/token", basic, Some(&proof), &grant).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(next.as_deref(), Some(nonce.as_str()));
    app.stop().await;
}

/// A JSON request with an optional `Authorization` (scheme and token) and `DPoP` header;
/// answers the status, `WWW-Authenticate` and the body.
async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    authorization: Option<(&str, &str)>,
    proof: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some((scheme, token)) = authorization {
        request = request.header("Authorization", format!("{scheme} {token}"));
    }
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (status, challenge, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn a_first_party_sign_in_with_a_proof_binds_the_session(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("app@example.com", STRONG_PASSWORD).await;
    let key = DpopKey::new();
    let credentials = json!({ "email": "app@example.com", "password": STRONG_PASSWORD });
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // A bad proof stops the sign-in (400), before the password is even looked at.
    let stale = json!({"jti": "old", "htm": "POST", "htu": app.url("/v1/auth/sign-in"), "iat": now() - 600});
    let (status, _, body) = api(
        &app,
        post.clone(),
        "/v1/auth/sign-in",
        None,
        Some(&key.sign(&stale, key.jwk())),
        Some(credentials.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_dpop_proof");

    let proof = key.proof("POST", &app.url("/v1/auth/sign-in"), None);
    let (status, _, tokens) =
        api(&app, post.clone(), "/v1/auth/sign-in", None, Some(&proof), Some(credentials.clone()))
            .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access)["cnf"]["jkt"], key.thumbprint());

    // The first-party API wants the proof with every call, of the bound key, for that call.
    let me = app.url("/v1/me");
    let (status, challenge, _) =
        api(&app, get.clone(), "/v1/me", Some(("Bearer", &access)), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a bound token as a bearer token");
    assert!(challenge.starts_with("DPoP"), "{challenge}");
    let (status, _, body) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", &access)), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_dpop_proof");
    let proof = key.proof("GET", &me, Some(&access));
    let (status, _, user) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", &access)), Some(&proof), None).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], "app@example.com");
    let (status, _, body) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", &access)), Some(&proof), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")),
        "replayed"
    );
    let other = DpopKey::new().proof("GET", &me, Some(&access));
    let (status, _, _) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", &access)), Some(&other), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another key");
    let sessions = key.proof("GET", &app.url("/v1/me/sessions"), Some(&access));
    let (status, _, _) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", &access)), Some(&sessions), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a proof for another URI");

    // Refreshing needs a proof of the same key; refusals do not burn the token.
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let body = json!({ "refresh_token": refresh_token });
    let refresh_url = app.url("/v1/auth/refresh");
    let (status, _, refused) =
        api(&app, post.clone(), "/v1/auth/refresh", None, None, Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    let other = DpopKey::new().proof("POST", &refresh_url, None);
    let (status, _, _) =
        api(&app, post.clone(), "/v1/auth/refresh", None, Some(&other), Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let proof = key.proof("POST", &refresh_url, None);
    let (status, _, refreshed) =
        api(&app, post.clone(), "/v1/auth/refresh", None, Some(&proof), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["token_type"], "DPoP");
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );

    // A sign-in without a proof stays a bearer session, and refuses the DPoP scheme.
    let (_, _, plain) = api(&app, post, "/v1/auth/sign-in", None, None, Some(credentials)).await;
    assert_eq!(plain["token_type"], "Bearer");
    let plain = plain["access_token"].as_str().unwrap();
    let proof = key.proof("GET", &me, Some(plain));
    let (status, _, _) =
        api(&app, get.clone(), "/v1/me", Some(("DPoP", plain)), Some(&proof), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = api(&app, get, "/v1/me", Some(("Bearer", plain)), None, None).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
