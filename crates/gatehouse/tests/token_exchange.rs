//! Token exchange (RFC 8693): a service exchanges a user's access token for one for another
//! resource — delegation with its own token as actor (`act`), impersonation without —, each
//! only where the target resource's policy names the client; scopes only narrow; refusals for
//! a grant the client lacks, an unknown resource, a scope not held, a revoked or foreign-typed
//! subject token; the exchange audited. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::oauth_browser::{Browser, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(a_service_exchanges_a_users_token_as_the_resource_allows);

const REDIRECT: &str = "https://app.example.com/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REPORTS: &str = "https://reports.example.com";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

fn claims_of(token: &str) -> Value {
    gatehouse_crypto::jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap()
}

/// A user's access token from a code flow of a web app (scopes `openid reports:read`), and
/// the web app's credentials.
async fn user_token(app: &TestApp) -> (String, (String, String)) {
    let (client_id, secret) = app
        .client(NewClient {
            name: "Web".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: vec!["openid".into(), "reports:read".into(), "reports:write".into()],
            skip_consent: true,
            ..NewClient::default()
        })
        .await;
    let secret = secret.unwrap();
    let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid reports:read")
        .append_pair("code_challenge", &gatehouse_crypto::pkce_s256(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    let mut browser = Browser::new(&app.base_url);
    let first = browser.get(url.as_str()).await;
    let login = browser.follow(first).await;
    let done = browser.sign_in(&login, "user@example.com", STRONG_PASSWORD).await;
    let code = query(&done.location.clone().unwrap())["code"].clone();
    let (status, tokens) = app
        .post_form(
            "/oauth2/token",
            Some((&client_id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (tokens["access_token"].as_str().unwrap().to_owned(), (client_id, secret))
}

async fn a_service_exchanges_a_users_token_as_the_resource_allows(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("user@example.com", STRONG_PASSWORD).await;
    let admin = app.admin_key().await;
    let (subject, (web_id, web_secret)) = user_token(&app).await;
    let (service_id, service_secret) = app
        .client(NewClient {
            name: "Agent service".into(),
            grant_types: vec![EXCHANGE.into(), "client_credentials".into()],
            scopes: vec!["reports:read".into(), "reports:write".into()],
            ..NewClient::default()
        })
        .await;
    let service_secret = service_secret.unwrap();
    let service = (service_id.as_str(), service_secret.as_str());
    let (status, resource) = app
        .post(
            "/v1/admin/resource-servers",
            Some(&admin),
            json!({ "identifier": REPORTS, "name": "Reports", "scopes": ["reports:read", "reports:write"],
                    "delegation_clients": [service_id] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resource}");
    let (_, discovery) = app.get_json("/.well-known/openid-configuration").await;
    assert!(discovery["grant_types_supported"].as_array().unwrap().contains(&json!(EXCHANGE)));

    // The service's own token is the actor.
    let (_, own) = app
        .post_form("/oauth2/token", Some(service), &[("grant_type", "client_credentials")])
        .await;
    let actor = own["access_token"].as_str().unwrap().to_owned();
    let exchange = |extra: Vec<(&'static str, String)>| {
        let app = &app;
        let subject = subject.clone();
        async move {
            let mut form = vec![
                ("grant_type", EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS_TOKEN.to_owned()),
            ];
            for (name, value) in extra {
                form.retain(|(known, _)| *known != name);
                form.push((name, value));
            }
            let borrowed: Vec<(&str, &str)> =
                form.iter().map(|(name, value)| (*name, value.as_str())).collect();
            app.post_form("/oauth2/token", Some(service), &borrowed).await
        }
    };
    let delegated = vec![
        ("resource", REPORTS.to_owned()),
        ("actor_token", actor.clone()),
        ("actor_token_type", ACCESS_TOKEN.to_owned()),
    ];

    // Delegation: for the user, by the service, for the reports API, with the user's scopes.
    let (status, answer) = exchange(delegated.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer.get("refresh_token").is_none());
    let claims = claims_of(answer["access_token"].as_str().unwrap());
    let user = claims_of(&subject)["sub"].clone();
    assert_eq!(claims["sub"], user);
    assert_eq!(claims["aud"], REPORTS);
    assert_eq!(claims["act"]["sub"], service_id);
    assert_eq!(claims["client_id"], service_id);
    assert_eq!(claims["scope"], "reports:read", "never more than the subject token held");
    let (_, introspected) = app
        .post_form(
            "/oauth2/introspect",
            Some(service),
            &[("token", answer["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspected["active"], true, "{introspected}");

    // Refused: a scope the subject did not hold; no resource; an unknown one; a subject token
    // type other than an access token.
    let mut wider = delegated.clone();
    wider.push(("scope", "reports:write".into()));
    let (status, body) = exchange(wider).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (_, body) =
        exchange(vec![("actor_token", actor.clone()), ("actor_token_type", ACCESS_TOKEN.into())])
            .await;
    assert_eq!(body["error"], "invalid_target");
    let mut unknown = delegated.clone();
    unknown[0] = ("resource", "https://unknown.example".into());
    let (_, body) = exchange(unknown).await;
    assert_eq!(body["error"], "invalid_target");
    let mut id_token = delegated.clone();
    id_token.push(("subject_token_type", "urn:ietf:params:oauth:token-type:id_token".into()));
    let (_, body) = exchange(id_token).await;
    assert_eq!(body["error"], "invalid_request");

    // Impersonation (no actor) only once the resource allows it for this client.
    let impersonate = vec![("resource", REPORTS.to_owned())];
    let (status, body) = exchange(impersonate.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{body}"
    );
    let id = resource["id"].as_str().unwrap();
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/admin/resource-servers/{id}"),
            Some(&admin),
            Some(json!({ "impersonation_clients": [service_id] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = exchange(impersonate.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let claims = claims_of(answer["access_token"].as_str().unwrap());
    assert_eq!((claims["sub"].clone(), claims.get("act").is_none()), (user.clone(), true));

    // A client without the grant may not exchange, whatever the resource says.
    let (status, body) = app
        .post_form(
            "/oauth2/token",
            Some((&web_id, &web_secret)),
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", &subject),
                ("subject_token_type", ACCESS_TOKEN),
                ("resource", REPORTS),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );

    // A revoked subject token exchanges for nothing.
    let (status, _) =
        app.post_form("/oauth2/revoke", Some((&web_id, &web_secret)), &[("token", &subject)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = exchange(delegated).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    // Each exchange is in the audit trail, with the actor.
    let (_, audit) = app.get_auth("/v1/admin/audit-log?action=oauth.token_exchanged", &admin).await;
    let events = audit["data"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{audit}");
    assert!(events.iter().any(|event| event["metadata"]["actor"] == json!(service_id)));
    app.stop().await;
}
