//! Sign-in through GitHub, on both backends: a `kind = "github"` provider pointed (by its URL
//! overrides) at a local server that speaks GitHub's OAuth and REST shapes
//! (`support/github.rs`): the authorize redirect without `iss`, the token endpoint's
//! HTTP-200 refusals, `GET /user` with a numeric `id`, and the emails API whose verified
//! primary address is the one that counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/github.rs"]
mod github;
mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::federation::IdentityStore;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use github::{CLIENT_ID, CLIENT_SECRET, GitHub, GitHubEmail, GitHubUser};
use reqwest::StatusCode;
use serde_json::Value;
use support::oauth_browser::{Browser, Page, query};
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    signing_in_with_github_uses_the_verified_primary_address_and_the_numeric_id,
    an_untrusted_github_address_neither_links_nor_verifies,
    a_server_requiring_verified_addresses_refuses_an_untrusted_github_address,
    an_unverified_primary_address_is_no_address,
    a_user_without_a_verified_address_gets_sso_email_missing,
    a_refused_code_exchange_is_an_sso_failed_page_and_no_account,
);

/// The GitHub stand-in and this server configured with it as `github`.
struct Setup {
    github: GitHub,
    app: TestApp,
    admin: String,
}

/// `provider_extra`: more lines for the provider entry; `settings`: `GATEHOUSE_*` overrides.
async fn setup(test: &TestDatabase, provider_extra: &str, settings: &[(&str, &str)]) -> Setup {
    let github = GitHub::start().await;
    let file = github.provider_toml("github", provider_extra);
    let app =
        TestApp::spawn_with_file(test, &MasterKey::generate(), Some(&file), settings, None).await;
    github.register_callback(&app.url("/sso/github/callback"));
    let admin = app.admin_key().await;
    Setup { github, app, admin }
}

fn octocat() -> GitHubUser {
    GitHubUser {
        id: 583_231,
        login: "octocat".into(),
        name: Some("Mona Lisa Octocat".into()),
        // The public profile address differs from the verified primary one.
        email: Some("octocat@public.example".into()),
        emails: vec![
            GitHubEmail::new("mona@example.com", true, true),
            GitHubEmail::new("octocat@public.example", false, false),
            GitHubEmail::new("mona@old.example", false, true),
        ],
    }
}

impl Setup {
    /// `/sso/github` in `browser`, then GitHub's authorize endpoint (which signs in the chosen
    /// user at once), then this server's answer to the callback.
    async fn through_github(&self, browser: &mut Browser, start: &str) -> Page {
        let started = browser.get(start).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
        let authorize = started.location.unwrap();
        assert!(authorize.starts_with(&self.github.url("/login/oauth/authorize?")), "{authorize}");
        let parameters = query(&authorize);
        assert_eq!(parameters["client_id"], CLIENT_ID);
        assert_eq!(parameters["redirect_uri"], self.app.url("/sso/github/callback"));
        assert_eq!(parameters["scope"], "read:user user:email");
        assert_eq!(parameters["code_challenge_method"], "S256");
        assert!(parameters.contains_key("code_challenge") && parameters.contains_key("state"));
        // Plain OAuth 2: no nonce.
        assert!(!parameters.contains_key("nonce"), "{authorize}");
        let mut at_github = Browser::new(&self.github.base_url);
        let back = at_github.get(&authorize).await;
        assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
        let callback = back.location.unwrap();
        assert!(callback.starts_with(&self.app.url("/sso/github/callback?")), "{callback}");
        let answered = query(&callback);
        assert_eq!(answered["state"], parameters["state"]);
        assert!(!answered.contains_key("iss"), "GitHub sends no iss: {callback}");
        browser.get(&callback).await
    }

    async fn users_named(&self, email: &str) -> Vec<Value> {
        let (status, users) =
            self.app.get_auth(&format!("/v1/admin/users?email={email}"), &self.admin).await;
        assert_eq!(status, StatusCode::OK, "{users}");
        users["data"].as_array().unwrap().clone()
    }

    async fn all_users(&self) -> Vec<Value> {
        let (status, users) = self.app.get_auth("/v1/admin/users", &self.admin).await;
        assert_eq!(status, StatusCode::OK, "{users}");
        users["data"].as_array().unwrap().clone()
    }

    async fn actions(&self, action: &str) -> Vec<Value> {
        let (_, log) =
            self.app.get_auth(&format!("/v1/admin/audit-log?action={action}"), &self.admin).await;
        log["data"].as_array().unwrap().clone()
    }

    /// The user linked to GitHub's subject `subject`, read through the store.
    async fn linked_user(&self, subject: &str) -> Option<String> {
        let record = self.app.database.identity_by_subject("github", subject).await.unwrap();
        record.map(|record| record.user_id)
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

async fn signing_in_with_github_uses_the_verified_primary_address_and_the_numeric_id(
    test: TestDatabase,
) {
    // The preset's default: GitHub's verified primary address is trusted.
    let setup = setup(&test, "", &[]).await;
    let (_, providers) = setup.app.get_json("/v1/auth/providers").await;
    assert_eq!(providers["data"][0]["kind"], "github", "{providers}");
    setup.github.sign_in_as(octocat());

    let mut browser = Browser::new(&setup.app.base_url);
    let landed = setup.through_github(&mut browser, "/sso/github?return_to=/account").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/account"));
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("mona@example.com"), "{}", account.body);

    // The account has the verified primary address, not the public profile one nor the other
    // verified address; GitHub's `name` is one string, kept whole as the first name.
    let users = setup.all_users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    let user = &users[0];
    assert_eq!(user["email"], "mona@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["first_name"], "Mona Lisa Octocat");
    assert_eq!(user["last_name"], Value::Null);
    let user_id = user["id"].as_str().unwrap().to_owned();
    assert!(setup.users_named("octocat@public.example").await.is_empty());
    // The identity's subject is the numeric id, as text.
    assert_eq!(setup.linked_user("583231").await.as_deref(), Some(user_id.as_str()));
    assert_eq!(setup.linked_user("octocat").await, None);
    let created = setup.actions("user.created").await;
    assert_eq!(created[0]["metadata"]["provider_id"], "github", "{created:?}");
    assert_eq!(setup.actions("identity.linked").await.len(), 1);

    // The user renames themself and changes addresses at GitHub: the id is what identifies
    // them, so a second sign-in (another browser) reaches the same account.
    let mut renamed = octocat();
    renamed.login = "mona".into();
    renamed.email = None;
    renamed.emails = vec![GitHubEmail::new("mona@new.example", true, true)];
    setup.github.sign_in_as(renamed);
    let mut browser = Browser::new(&setup.app.base_url);
    let landed = setup.through_github(&mut browser, "/sso/github").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(setup.all_users().await.len(), 1);
    let used = setup.actions("identity.used").await;
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["actor_id"], user_id.as_str());
    // The oauth2 crate's BasicClient sent the client's credentials in HTTP Basic both times.
    assert_eq!(setup.github.client_authentications(), ["basic", "basic"]);
    setup.stop().await;
}

async fn an_untrusted_github_address_neither_links_nor_verifies(test: TestDatabase) {
    // An operator who does not trust GitHub's verified addresses (the preset does).
    let setup = setup(&test, "trust_email_verified = false", &[]).await;
    let signed_up = setup.app.sign_up("mona@example.com", STRONG_PASSWORD).await;
    let existing_id = signed_up["user"]["id"].as_str().unwrap().to_owned();
    setup.github.sign_in_as(octocat());

    // An account has the address GitHub verified, but the provider is not trusted for it:
    // no link, a 409 page telling the person to sign in and link from their account.
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.location, None);
    assert!(refused.body.contains("already have an account"), "{}", refused.body);
    assert!(setup.actions("identity.linked").await.is_empty());
    assert_eq!(setup.linked_user("583231").await, None);
    let users = setup.all_users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], existing_id.as_str());

    // With no such account, one is created, its address not taken as verified.
    let mut hubot = octocat();
    hubot.id = 480_938;
    hubot.login = "hubot".into();
    hubot.emails = vec![GitHubEmail::new("hubot@example.com", true, true)];
    setup.github.sign_in_as(hubot);
    let mut browser = Browser::new(&setup.app.base_url);
    let landed = setup.through_github(&mut browser, "/sso/github").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let created = setup.users_named("hubot@example.com").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["email_verified"], false);
    assert_eq!(setup.linked_user("480938").await.as_deref(), created[0]["id"].as_str());
    setup.stop().await;
}

async fn a_server_requiring_verified_addresses_refuses_an_untrusted_github_address(
    test: TestDatabase,
) {
    let setup = setup(
        &test,
        "trust_email_verified = false",
        &[("GATEHOUSE_REQUIRE_EMAIL_VERIFICATION", "true")],
    )
    .await;
    setup.github.sign_in_as(octocat());
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    // A page that says why and what to do, no account.
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("not verified"), "{}", refused.body);
    assert_eq!(refused.location, None);
    assert!(setup.all_users().await.is_empty());
    assert_eq!(setup.linked_user("583231").await, None);
    setup.stop().await;
}

async fn an_unverified_primary_address_is_no_address(test: TestDatabase) {
    // Trusted, so only the missing verification stands in the way.
    let setup = setup(&test, "trust_email_verified = true", &[]).await;
    setup.app.sign_up("mona@example.com", STRONG_PASSWORD).await;
    let mut user = octocat();
    user.email = Some("mona@example.com".into());
    user.emails = vec![
        GitHubEmail::new("mona@example.com", true, false),
        GitHubEmail::new("mona@old.example", false, true),
    ];
    setup.github.sign_in_as(user);

    // An account has that address: the unverified primary address is never read (nor the
    // public profile one, nor a verified secondary one), so the answer is "no address", not
    // "an account exists" — and nothing links.
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("did not work"), "{}", refused.body);
    assert_eq!(setup.github.api_calls(), ["/user 200", "/user/emails 200"]);
    assert!(setup.actions("identity.linked").await.is_empty());
    assert_eq!(setup.linked_user("583231").await, None);

    // No account has it: the same, and no account is made.
    let mut other = octocat();
    other.id = 1;
    other.email = None;
    other.emails = vec![GitHubEmail::new("new@example.com", true, false)];
    setup.github.sign_in_as(other);
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(setup.users_named("new@example.com").await.is_empty());
    assert_eq!(setup.all_users().await.len(), 1);
    setup.stop().await;
}

async fn a_user_without_a_verified_address_gets_sso_email_missing(test: TestDatabase) {
    let setup = setup(&test, "trust_email_verified = true", &[]).await;
    let mut user = octocat();
    user.emails = vec![
        GitHubEmail::new("mona@example.com", true, false),
        GitHubEmail::new("octocat@public.example", false, false),
    ];
    setup.github.sign_in_as(user);
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    // sso_email_missing, shown as the sso_failed page.
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.location, None);
    assert!(refused.body.contains("Sign-in with this provider did not work"), "{}", refused.body);
    // The page is the same for every sso_failed code; what set this one apart: the exchange
    // worked and both API calls answered, so the refusal came from the addresses.
    assert_eq!(setup.github.api_calls(), ["/user 200", "/user/emails 200"]);
    assert!(setup.all_users().await.is_empty());
    assert!(setup.actions("identity.linked").await.is_empty());
    setup.stop().await;
}

async fn a_refused_code_exchange_is_an_sso_failed_page_and_no_account(test: TestDatabase) {
    let setup = setup(&test, "trust_email_verified = true", &[]).await;
    setup.github.sign_in_as(octocat());
    setup.github.refuse_next_exchange();
    let mut browser = Browser::new(&setup.app.base_url);
    let refused = setup.through_github(&mut browser, "/sso/github").await;
    // GitHub refuses with HTTP 200 and {"error":"bad_verification_code"}: a refusal (400,
    // the sso_failed page), not an unreachable provider.
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.location, None);
    assert!(refused.body.contains("Sign-in with this provider did not work"), "{}", refused.body);
    assert!(setup.all_users().await.is_empty());
    assert_eq!(setup.linked_user("583231").await, None);
    assert_eq!(setup.github.outstanding_codes(), 0, "the code was presented once");
    assert!(setup.github.api_calls().is_empty(), "no token, so no API call");
    setup.stop().await;
}

// The stand-in itself answers as GitHub does, to a client that is not Gatehouse.
#[tokio::test]
async fn the_github_stand_in_answers_in_githubs_shapes() {
    let github = GitHub::start().await;
    let callback = "http://127.0.0.1:9/sso/github/callback";
    github.register_callback(callback);
    github.sign_in_as(octocat());
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let authorize = |client_id: &str, redirect_uri: &str, challenge: &str| {
        let mut url = reqwest::Url::parse(&github.url("/login/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", "st")
            .append_pair("scope", "read:user user:email")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    };
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };

    // An unknown client: a 404 page, no redirect.
    let unknown = http.get(authorize("nobody", callback, &challenge)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.headers().get("location").is_none());
    // A redirect URI outside the registered callback: back to the registered one, with
    // redirect_uri_mismatch (GitHub's documented answer), never to the requested one.
    let foreign =
        http.get(authorize(CLIENT_ID, "http://evil.example/cb", &challenge)).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FOUND);
    let location = foreign.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(callback), "{location}");
    assert_eq!(query(&location)["error"], "redirect_uri_mismatch");
    assert_eq!(query(&location)["state"], "st");

    let code = |page: reqwest::Response| {
        let location = page.headers()["location"].to_str().unwrap().to_owned();
        query(&location)["code"].clone()
    };
    let exchange = |code: String, verifier: &'static str, secret: &'static str, json: bool| {
        let mut request = http.post(github.url("/login/oauth/access_token")).form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", callback),
            ("code_verifier", verifier),
        ]);
        if json {
            request = request.header("accept", "application/json");
        }
        request.send()
    };

    // A wrong verifier: bad_verification_code, with HTTP 200; the code is spent.
    let first = code(http.get(authorize(CLIENT_ID, callback, &challenge)).send().await.unwrap());
    let refused = exchange(
        first.clone(),
        "another-verifier-of-forty-three-characters-xxxxx",
        CLIENT_SECRET,
        true,
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::OK);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "bad_verification_code", "{body}");
    let again = exchange(first, verifier, CLIENT_SECRET, true).await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "bad_verification_code");

    // A wrong secret: incorrect_client_credentials, form-encoded without Accept: JSON.
    let second = code(http.get(authorize(CLIENT_ID, callback, &challenge)).send().await.unwrap());
    let refused = exchange(second, verifier, "wrong", false).await.unwrap();
    assert_eq!(refused.status(), StatusCode::OK);
    let text = refused.text().await.unwrap();
    assert!(text.starts_with("error=incorrect_client_credentials&"), "{text}");

    // The right one (form credentials): a gho_ token, bearer, comma-separated scopes.
    let third = code(http.get(authorize(CLIENT_ID, callback, &challenge)).send().await.unwrap());
    let answer: Value =
        exchange(third, verifier, CLIENT_SECRET, true).await.unwrap().json().await.unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gho_"), "{answer}");
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["scope"], "read:user,user:email");
    assert_eq!(github.client_authentications(), ["form", "form", "form", "form"]);

    // The REST API: Bearer or token; a missing or wrong token is 401 Bad credentials.
    let user: Value = http
        .get(github.url("/user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["id"], 583_231);
    assert_eq!(user["login"], "octocat");
    assert_eq!(user["email"], "octocat@public.example");
    let emails: Value = http
        .get(github.url("/user/emails"))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emails[0]["email"], "mona@example.com");
    assert_eq!(emails[0]["primary"], true);
    assert_eq!(emails[0]["verified"], true);
    assert_eq!(emails[0]["visibility"], "private");
    for authorization in [None, Some("Bearer gho_unknown"), Some("Basic Zm9vOmJhcg==")] {
        let mut request = http.get(github.url("/user/emails"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json::<Value>().await.unwrap()["message"], "Bad credentials");
    }
}
