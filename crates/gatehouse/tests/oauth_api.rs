//! The OAuth endpoints that need no browser, on both backends: discovery, client_credentials,
//! client authentication, introspection and revocation, error formats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use support::TestApp;

backend_tests!(
    discovery_advertises_what_is_implemented,
    client_credentials_issue_rfc9068_tokens,
    wrong_client_secrets_are_invalid_client_with_a_challenge,
    introspection_only_answers_about_the_callers_tokens,
    revoked_access_tokens_are_inactive,
    admins_manage_clients,
    private_key_jwt_clients_authenticate_with_signed_assertions,
    client_authentication_is_held_to_the_registered_family,
    changing_a_clients_method_clears_the_old_secret,
    an_assertion_jti_is_remembered_as_long_as_the_assertion_verifies,
);

/// A `client_assertion` form for `client` signed by `key`, addressed to the token endpoint.
fn assertion_form(
    app: &TestApp,
    key: &gatehouse_crypto::SigningKey,
    client: &str,
    jti: &str,
) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let assertion = key
        .sign(
            "JWT",
            &serde_json::json!({ "iss": client, "sub": client, "aud": app.url("/oauth2/token"), "iat": now, "exp": now + 60, "jti": jti }),
        )
        .unwrap();
    vec![
        ("grant_type", "client_credentials".to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", assertion),
    ]
}

async fn post_owned_form(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&'static str, String)],
) -> (StatusCode, serde_json::Value) {
    let borrowed: Vec<(&str, &str)> =
        form.iter().map(|(name, value)| (*name, value.as_str())).collect();
    app.post_form("/oauth2/token", basic, &borrowed).await
}

/// Finding 3: a client proves itself only with a method of its registered family, and a
/// client without a secret cannot be given one by rotation.
async fn client_authentication_is_held_to_the_registered_family(test: TestDatabase) {
    use gatehouse_crypto::{SigningAlgorithm, SigningKey};
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    let key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&admin),
            serde_json::json!({ "name": "Service", "client_id": "service", "grant_types": ["client_credentials"], "scopes": ["api:read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&admin),
            serde_json::json!({ "name": "Signed", "client_id": "signed", "grant_types": ["client_credentials"], "scopes": ["api:read"], "jwks": jwks }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = app
        .post(
            "/v1/admin/clients",
            Some(&admin),
            serde_json::json!({ "name": "Spa", "client_id": "spa", "public": true, "redirect_uris": ["https://spa.example/cb"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // The secret client: Basic and form fields both work, an assertion does not.
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some(("service", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "client_secret_basic: {body}");
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "service"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "client_secret_post: {body}");
    let (status, body) =
        post_owned_form(&app, None, &assertion_form(&app, &key, "service", "a1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "a secret client presenting an assertion"
    );

    // The private_key_jwt client: its assertion works; rotation cannot hand it a secret.
    let (status, body) =
        post_owned_form(&app, None, &assertion_form(&app, &key, "signed", "b1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for client in ["signed", "spa"] {
        let (status, problem) = app
            .post(
                &format!("/v1/admin/clients/{client}/rotate-secret"),
                Some(&admin),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::CONFLICT, Some("client_has_no_secret")),
            "{client}: {problem}"
        );
        assert!(problem.get("client_secret").is_none());
    }
    // A public client presenting a secret is not a public client any more.
    let (status, body) = app
        .post_form("/oauth2/token", Some(("spa", &secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    app.stop().await;
}

/// Finding 3: moving a client to `private_key_jwt` (or public) drops its secret at once, the
/// rotated one still inside its overlap window included.
async fn changing_a_clients_method_clears_the_old_secret(test: TestDatabase) {
    use gatehouse_crypto::{SigningAlgorithm, SigningKey};
    let app = TestApp::spawn(&test).await;
    let admin = app.admin_key().await;
    let key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    for (client_id, target_public) in [("to-jwt", false), ("to-public", true)] {
        let declared = NewClient { client_id: Some(client_id.into()), ..service_client("Moving") };
        let (_, old_secret) = app.client(declared.clone()).await;
        let old_secret = old_secret.unwrap();
        // A rotation leaves the old secret working for the overlap window.
        let (status, rotated) = app
            .post(
                &format!("/v1/admin/clients/{client_id}/rotate-secret"),
                Some(&admin),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
        for secret in [&old_secret, &new_secret] {
            let (status, _) = app
                .post_form(
                    "/oauth2/token",
                    Some((client_id, secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        // The declaration (configuration file, or any update) changes the method.
        let moved = if target_public {
            NewClient {
                public: true,
                grant_types: vec!["authorization_code".into()],
                redirect_uris: vec!["https://app.example/cb".into()],
                ..declared
            }
        } else {
            NewClient { jwks: Some(serde_json::json!({ "keys": [key.public_jwk()] })), ..declared }
        };
        app.clients.apply_declared_client(moved).await.unwrap();
        for secret in [&old_secret, &new_secret] {
            let (status, body) = app
                .post_form(
                    "/oauth2/token",
                    Some((client_id, secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{client_id}: a secret of the old method"
            );
        }
        let stored = app
            .clients
            .get_client(&gatehouse_domain::principal::AdminPrincipal::system(), client_id)
            .await
            .unwrap();
        assert_eq!((stored.secret_digest, stored.previous_secret_digest), (None, None));
    }
    let (status, body) =
        post_owned_form(&app, None, &assertion_form(&app, &key, "to-jwt", "c1")).await;
    assert_eq!(status, StatusCode::OK, "the new method works: {body}");
    app.stop().await;
}

async fn private_key_jwt_clients_authenticate_with_signed_assertions(test: TestDatabase) {
    use gatehouse_crypto::{SigningAlgorithm, SigningKey};
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    let client_key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let stranger_key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&key),
            serde_json::json!({ "name": "Signed", "client_id": "signed", "grant_types": ["client_credentials"], "scopes": ["api:read"], "jwks": { "keys": [client_key.public_jwk()] } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("client_secret").is_none(), "no secret for private_key_jwt clients");
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let token_endpoint = app.url("/oauth2/token");
    let assertion = |key: &SigningKey, audience: &str, lifetime: i64, jti: &str| {
        key.sign(
            "JWT",
            &serde_json::json!({ "iss": "signed", "sub": "signed", "aud": audience, "iat": now, "exp": now + lifetime, "jti": jti }),
        )
        .unwrap()
    };
    let exchange = |assertion: String| {
        let app = &app;
        async move {
            app.post_form(
                "/oauth2/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let good = assertion(&client_key, &token_endpoint, 60, "one");
    let (status, body) = exchange(good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = exchange(good).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "a replayed assertion"
    );
    for (bad, why) in [
        (assertion(&stranger_key, &token_endpoint, 60, "two"), "signed by another key"),
        (
            assertion(&client_key, "https://elsewhere.example/token", 60, "three"),
            "addressed elsewhere",
        ),
        (assertion(&client_key, &token_endpoint, 3600, "four"), "lives too long"),
        (assertion(&client_key, &token_endpoint, -120, "five"), "expired"),
        ("not.a.jwt".to_owned(), "malformed"),
    ] {
        let (status, body) = exchange(bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{why}"
        );
    }
    // The issuer is an accepted audience too.
    let (status, _) = exchange(assertion(&client_key, &app.base_url, 60, "six")).await;
    assert_eq!(status, StatusCode::OK);
    // Such a client has no secret to fall back on.
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some(("signed", "guess")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn admins_manage_clients(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let key = app.admin_key().await;
    let (status, created) = app
        .post(
            "/v1/admin/clients",
            Some(&key),
            serde_json::json!({ "name": "Dashboard", "client_id": "dashboard", "redirect_uris": ["https://dash.example.com/cb"], "grant_types": ["authorization_code", "refresh_token", "client_credentials"], "scopes": ["openid", "reports"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some(("dashboard", &secret)),
            &[("grant_type", "client_credentials"), ("scope", "reports")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = app.get_auth("/v1/admin/clients/dashboard", &key).await;
    assert!(read.get("client_secret").is_none(), "the secret is shown once");
    assert_eq!(read["public"], false);
    let (_, list) = app.get_auth("/v1/admin/clients", &key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let cases = [
        serde_json::json!({ "name": "Bad", "redirect_uris": ["http://evil.example.com/cb"] }),
        serde_json::json!({ "name": "Bad", "redirect_uris": [] }),
        serde_json::json!({ "name": "Bad", "public": true, "grant_types": ["client_credentials"] }),
        serde_json::json!({ "name": "Bad", "redirect_uris": ["https://a.example/cb"], "grant_types": ["password"] }),
        serde_json::json!({ "name": "", "redirect_uris": ["https://a.example/cb"] }),
    ];
    for body in cases {
        let (status, problem) = app.post("/v1/admin/clients", Some(&key), body.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{body}"
        );
    }
    let (status, problem) = app
        .post("/v1/admin/clients", Some(&key), serde_json::json!({ "name": "Again", "client_id": "dashboard", "redirect_uris": ["https://a.example/cb"] }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

    let (status, rotated) = app
        .post("/v1/admin/clients/dashboard/rotate-secret", Some(&key), serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let (status, _) =
        app.send(reqwest::Method::DELETE, "/v1/admin/clients/dashboard", Some(&key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post_form(
            "/oauth2/token",
            Some(("dashboard", new_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get_auth("/v1/admin/clients/dashboard", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

fn service_client(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["api:read".into(), "api:write".into()],
        ..NewClient::default()
    }
}

async fn discovery_advertises_what_is_implemented(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let response = app
            .http
            .get(app.url(path))
            .header("origin", "https://spa.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let document: serde_json::Value = response.json().await.unwrap();
        assert_eq!(document["issuer"], app.base_url.as_str());
        assert_eq!(document["token_endpoint"], format!("{}/oauth2/token", app.base_url));
        assert_eq!(document["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(document["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
        assert_eq!(document["authorization_response_iss_parameter_supported"], true);
        let (status, _) = app
            .get_json(document["jwks_uri"].as_str().unwrap().trim_start_matches(&app.base_url))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // A browser's preflight before a cross-origin token request is granted, without
    // credentials, for the methods and headers the endpoints use.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/oauth2/token"))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert!(!headers.contains_key("access-control-allow-credentials"));
    // The answer itself carries the origin grant too, errors included (the SPA reads them).
    let answer = app
        .http
        .post(app.url("/oauth2/token"))
        .header("origin", "https://spa.example")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_client_error());
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    app.stop().await;
}

async fn client_credentials_issue_rfc9068_tokens(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (client_id, secret) = app.client(service_client("Billing")).await;
    let secret = secret.unwrap();
    assert!(secret.starts_with("gtc_"));
    // client_secret_basic
    let (status, token) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        (token["token_type"].as_str(), token["scope"].as_str()),
        (Some("Bearer"), Some("api:read"))
    );
    assert!(token.get("refresh_token").is_none() && token.get("id_token").is_none());
    let header =
        gatehouse_crypto::jsonwebtoken::decode_header(token["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    // client_secret_post, default scopes
    let (status, token) = app
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!((status, token["scope"].as_str()), (StatusCode::OK, Some("api:read api:write")));
    let cases: Vec<(&[(&str, &str)], &str)> = vec![
        (&[("grant_type", "client_credentials"), ("scope", "admin")], "invalid_scope"),
        (&[("grant_type", "client_credentials"), ("scope", "openid")], "invalid_scope"),
        (&[("grant_type", "password"), ("username", "x")], "unsupported_grant_type"),
        (&[("grant_type", "authorization_code"), ("code", "x")], "unauthorized_client"),
        (&[("scope", "api:read")], "invalid_request"),
    ];
    for (form, error) in cases {
        let (status, body) =
            app.post_form("/oauth2/token", Some((&client_id, &secret)), form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{form:?}: {body}"
        );
        assert!(body["error_description"].is_string());
    }
    // Parameters may not repeat; the body must be a form.
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn wrong_client_secrets_are_invalid_client_with_a_challenge(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (client_id, secret) = app.client(service_client("Billing")).await;
    let secret = secret.unwrap();
    for (id, wrong) in [
        (client_id.as_str(), "ghs_wrong"),
        ("unknown-client", secret.as_str()),
        (client_id.as_str(), ""),
    ] {
        let response = app
            .http
            .post(app.url("/oauth2/token"))
            .basic_auth(id, Some(wrong))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{id}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    // A rotated secret keeps working during the overlap; the new one works at once.
    let admin = gatehouse_domain::principal::AdminPrincipal::system();
    let (_, rotated) =
        app.clients.rotate_client_secret(&admin, &client_id, &Default::default()).await.unwrap();
    for secret in [&secret, &rotated] {
        let (status, _) = app
            .post_form(
                "/oauth2/token",
                Some((&client_id, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.stop().await;
}

async fn introspection_only_answers_about_the_callers_tokens(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (first, first_secret) = app.client(service_client("First")).await;
    let (second, second_secret) = app.client(service_client("Second")).await;
    let (first_secret, second_secret) = (first_secret.unwrap(), second_secret.unwrap());
    let (_, token) = app
        .post_form(
            "/oauth2/token",
            Some((&first, &first_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let access_token = token["access_token"].as_str().unwrap();

    let (status, own) = app
        .post_form("/oauth2/introspect", Some((&first, &first_secret)), &[("token", access_token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (own["active"].as_bool(), own["client_id"].as_str(), own["sub"].as_str()),
        (Some(true), Some(first.as_str()), Some(first.as_str()))
    );
    assert_eq!(own["scope"], "api:read api:write");

    let (_, other) = app
        .post_form(
            "/oauth2/introspect",
            Some((&second, &second_secret)),
            &[("token", access_token)],
        )
        .await;
    assert_eq!(other, serde_json::json!({ "active": false }), "another client learns nothing");
    let (_, garbage) = app
        .post_form("/oauth2/introspect", Some((&first, &first_secret)), &[("token", "garbage")])
        .await;
    assert_eq!(garbage, serde_json::json!({ "active": false }));
    let (status, body) =
        app.post_form("/oauth2/introspect", None, &[("token", access_token)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    app.stop().await;
}

async fn revoked_access_tokens_are_inactive(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    let (client_id, secret) = app.client(service_client("Revoker")).await;
    let (other, other_secret) = app.client(service_client("Other")).await;
    let (secret, other_secret) = (secret.unwrap(), other_secret.unwrap());
    let (_, token) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let access_token = token["access_token"].as_str().unwrap();
    // Another client's revocation is ignored (and answers 200 all the same).
    let (status, _) = app
        .post_form("/oauth2/revoke", Some((&other, &other_secret)), &[("token", access_token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, active) = app
        .post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", access_token)])
        .await;
    assert_eq!(active["active"], true);
    let (status, _) = app
        .post_form("/oauth2/revoke", Some((&client_id, &secret)), &[("token", access_token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, inactive) = app
        .post_form("/oauth2/introspect", Some((&client_id, &secret)), &[("token", access_token)])
        .await;
    assert_eq!(inactive, serde_json::json!({ "active": false }));
    let (status, _) =
        app.post_form("/oauth2/revoke", Some((&client_id, &secret)), &[("token", "unknown")]).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// Finding 8: an assertion that still verifies (its `exp` within the leeway) cannot be
/// replayed, even after other assertions made the store forget expired entries.
async fn an_assertion_jti_is_remembered_as_long_as_the_assertion_verifies(test: TestDatabase) {
    use gatehouse_crypto::{SigningAlgorithm, SigningKey};
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let clock = std::sync::Arc::new(gatehouse_domain::ManualClock::new(wall));
    let app = TestApp::spawn_with_clock(
        &test,
        &gatehouse_crypto::MasterKey::generate(),
        &[],
        Some(clock.clone()),
    )
    .await;
    let key = SigningKey::generate(SigningAlgorithm::ES256, 2048).unwrap();
    app.client(NewClient {
        client_id: Some("signed".into()),
        jwks: Some(serde_json::json!({ "keys": [key.public_jwk()] })),
        ..service_client("Signed")
    })
    .await;
    let form = |exp: i64, jti: &str| {
        let assertion = key
            .sign(
                "JWT",
                &serde_json::json!({ "iss": "signed", "sub": "signed", "aud": app.url("/oauth2/token"), "iat": exp - 60, "exp": exp, "jti": jti }),
            )
            .unwrap();
        vec![
            ("grant_type", "client_credentials".to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion),
        ]
    };
    // Ten seconds past its `exp`, inside the 30-second leeway: accepted once.
    let late = form(wall - 10, "late");
    let (status, body) = post_owned_form(&app, None, &late).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Time passes (still inside the leeway); another assertion sweeps expired entries.
    clock.advance(5);
    let (status, body) = post_owned_form(&app, None, &form(wall + 60, "fresh")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_owned_form(&app, None, &late).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "the replay of an assertion that still verifies"
    );
    // Past `exp + leeway` it is refused by our clock too.
    clock.advance(30);
    let (status, _) = post_owned_form(&app, None, &form(wall - 10, "too-late")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
