//! The federation parts of the hosted pages, on both backends, with a second Gatehouse as the
//! upstream (as in `federation.rs`): a "Continue with …" button per provider on `/login` and
//! `/signup` carrying `return_to` (through an OAuth authorization and back to it), those an
//! admin adds too, none without providers, and `/account`'s linked accounts — listed, linked with the "Link …"
//! button, unlinked with a CSRF-checked form, the last way to sign in kept with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_crypto::MasterKey;
use gatehouse_domain::oauth::clients::NewClient;
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use support::oauth_browser::{Browser, Page, query, unescape};
use support::upstream_pair::pair;
use support::{STRONG_PASSWORD, TestApp};

backend_tests!(
    provider_buttons_carry_return_to_through_an_oauth_authorization,
    pages_have_no_provider_buttons_without_providers,
    a_provider_an_admin_adds_gets_a_button_until_removed,
    the_account_page_links_lists_and_unlinks_an_identity,
    the_last_way_to_sign_in_is_not_unlinked,
);

const REDIRECT: &str = "https://app.example/callback";

/// The `href` of every `<a>` of `class` on the page, unescaped.
fn links(page: &Page, class: &str) -> Vec<String> {
    let marker = format!("<a class=\"{class}\" href=\"");
    page.body
        .split(&marker)
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .collect()
}

/// The provider buttons of `/login` and `/signup`.
fn provider_buttons(page: &Page) -> Vec<String> {
    links(page, "button provider")
}

/// The account page's "Link …" buttons.
fn link_buttons(page: &Page) -> Vec<String> {
    links(page, "button button-secondary provider")
}

/// The action of every linked account's unlink form.
fn unlink_actions(page: &Page) -> Vec<String> {
    page.body
        .split("<form method=\"post\" action=\"")
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .filter(|action| action.starts_with("/account/identities/"))
        .collect()
}

/// Signs `browser` in with a password through `/login`, and answers `/account`.
async fn signed_in_account(browser: &mut Browser, email: &str) -> Page {
    let login = browser.get("/login?return_to=%2Faccount").await;
    let account = browser.sign_in(&login, email, STRONG_PASSWORD).await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert!(account.body.contains(&format!("Signed in as {email}.")), "{}", account.body);
    account
}

async fn provider_buttons_carry_return_to_through_an_oauth_authorization(test: TestDatabase) {
    let pair = pair(&test, true).await;
    pair.upstream_user("ada@example.com", true).await;
    let mut browser = Browser::new(&pair.app.base_url);

    let login = browser.get("/login").await;
    assert_eq!(provider_buttons(&login), ["/sso/corp?return_to=%2Faccount"]);
    assert!(login.body.contains("<span>Continue with Corp SSO</span>"), "{}", login.body);
    assert!(login.body.contains("<svg class=\"provider-icon\""), "{}", login.body);
    let french = browser.get("/login?lang=fr&return_to=%2Fconsent%3Fx%3D1").await;
    assert_eq!(provider_buttons(&french), ["/sso/corp?return_to=%2Fconsent%3Fx%3D1"]);
    assert!(french.body.contains("Continuer avec Corp SSO"), "{}", french.body);
    let signup = browser.get("/signup?return_to=%2Faccount%23passkeys").await;
    assert_eq!(signup.status, StatusCode::OK);
    assert_eq!(provider_buttons(&signup), ["/sso/corp?return_to=%2Faccount%23passkeys"]);
    assert!(signup.body.contains("Continue with Corp SSO"), "{}", signup.body);

    // Inside an authorization: /login's button goes upstream and back into the authorization,
    // which ends at the client with a code.
    pair.app
        .client(NewClient {
            client_id: Some("shop".into()),
            public: true,
            name: "Shop".into(),
            redirect_uris: vec![REDIRECT.into()],
            skip_consent: true,
            ..NewClient::default()
        })
        .await;
    let challenge = gatehouse_crypto::pkce_s256(&gatehouse_crypto::random_token());
    let parameters = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", "shop"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .unwrap();
    let authorize = format!("/oauth2/authorize?{parameters}");
    let to_login = browser.get(&authorize).await;
    assert_eq!(to_login.status, StatusCode::SEE_OTHER, "{}", to_login.body);
    let login = browser.follow(to_login).await;
    let buttons = provider_buttons(&login);
    assert_eq!(buttons.len(), 1, "{}", login.body);
    assert!(buttons[0].starts_with("/sso/corp?return_to=%2Foauth2%2Fauthorize%3F"), "{buttons:?}");
    let carried = query(&pair.app.url(&buttons[0]))["return_to"].clone();
    assert_eq!(query(&pair.app.url(&carried)), query(&pair.app.url(&authorize)));

    let mut upstream = Browser::new(&pair.upstream.base_url);
    let landed =
        pair.through_upstream(&mut browser, &mut upstream, &buttons[0], "ada@example.com").await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some(carried.as_str()));
    let answered = browser.get(&carried).await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let to_client = answered.location.unwrap();
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    let answer = query(&to_client);
    assert_eq!(answer["state"], "s1");
    assert!(answer.contains_key("code"), "{answer:?}");
    pair.stop().await;
}

async fn pages_have_no_provider_buttons_without_providers(test: TestDatabase) {
    let app = TestApp::spawn(&test).await;
    app.sign_up("bo@example.com", STRONG_PASSWORD).await;
    let mut browser = Browser::new(&app.base_url);
    let (status, providers) = app.get_json("/v1/auth/providers").await;
    assert_eq!((status, providers["data"].clone()), (StatusCode::OK, json!([])));
    for path in ["/login?return_to=%2Faccount", "/signup?return_to=%2Faccount", "/login?lang=fr"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for absent in ["provider", "<svg", "/sso/", "Continue with", "Continuer avec"] {
            assert!(!page.body.contains(absent), "{path}: {absent}\n{}", page.body);
        }
    }
    let account = signed_in_account(&mut browser, "bo@example.com").await;
    for absent in ["Linked accounts", "linked-accounts", "provider", "/sso/"] {
        assert!(!account.body.contains(absent), "{absent}\n{}", account.body);
    }
    app.stop().await;
}

async fn a_provider_an_admin_adds_gets_a_button_until_removed(test: TestDatabase) {
    let allow_local = [("GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS", "true")];
    let app = TestApp::spawn_with(&test, &MasterKey::generate(), &allow_local).await;
    let admin = app.admin_key().await;
    let mut browser = Browser::new(&app.base_url);
    assert!(provider_buttons(&browser.get("/login").await).is_empty());
    let request = json!({
        "id": "partner", "kind": "oidc", "name": "Partner & Co", "issuer": "http://127.0.0.1:9",
        "client_id": "gatehouse", "client_secret": "a-partner-client-secret-0123456789",
    });
    let (status, created) = app.post("/v1/admin/identity-providers", Some(&admin), request).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let login = browser.get("/login?return_to=%2Faccount").await;
    assert_eq!(provider_buttons(&login), ["/sso/partner?return_to=%2Faccount"]);
    assert!(login.body.contains("Continue with Partner &amp; Co"), "{}", login.body);
    let signup = browser.get("/signup").await;
    assert_eq!(provider_buttons(&signup), ["/sso/partner?return_to=%2Faccount"]);

    let (status, _) = app
        .send(reqwest::Method::DELETE, "/v1/admin/identity-providers/partner", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(provider_buttons(&browser.get("/login").await).is_empty());
    app.stop().await;
}

async fn the_account_page_links_lists_and_unlinks_an_identity(test: TestDatabase) {
    // Not trusted for addresses: linking from the account is how to join an existing account.
    let pair = pair(&test, false).await;
    let tokens = pair.app.sign_up("dee@example.com", STRONG_PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    pair.upstream_user("dee.work@example.com", false).await;
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);

    let account = signed_in_account(&mut browser, "dee@example.com").await;
    assert!(account.body.contains("<h2 id=\"linked-accounts\">Linked accounts</h2>"));
    assert!(account.body.contains("No account from another provider is linked"));
    assert!(unlink_actions(&account).is_empty());
    assert_eq!(link_buttons(&account), ["/sso/corp?link=1"]);
    assert!(account.body.contains("<span>Link Corp SSO</span>"), "{}", account.body);

    // The button links the upstream identity and comes back to the account.
    let landed = pair
        .through_upstream(&mut browser, &mut upstream, "/sso/corp?link=1", "dee.work@example.com")
        .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location.as_deref(), Some("/account"));
    let account = browser.get("/account").await;
    let (_, identities) = pair.app.get_auth("/v1/me/identities", &access).await;
    let identity_id = identities["data"][0]["id"].as_str().unwrap().to_owned();
    let unlink = format!("/account/identities/{identity_id}/unlink");
    assert_eq!(unlink_actions(&account), std::slice::from_ref(&unlink));
    assert!(account.body.contains("<strong>Corp SSO</strong> · dee.work@example.com"));
    assert!(account.body.contains("<small>linked 20"), "a date: {}", account.body);
    assert!(link_buttons(&account).is_empty(), "corp is linked already");
    let french = browser.get("/account?lang=fr").await;
    assert!(french.body.contains("Comptes liés") && french.body.contains(">Délier</button>"));

    // Without the page's CSRF token (missing, or another value): refused, still linked.
    let csrf = account.field("csrf_token").unwrap();
    let missing = browser.post(&unlink, &[]).await;
    let wrong = browser.post(&unlink, &[("csrf_token", &"A".repeat(43))]).await;
    let mut stranger = Browser::new(&pair.app.base_url);
    let cookieless = stranger.post(&unlink, &[("csrf_token", &csrf)]).await;
    for refused in [&missing, &wrong, &cookieless] {
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("This form has expired"), "{}", refused.body);
    }
    let (_, identities) = pair.app.get_auth("/v1/me/identities", &access).await;
    assert_eq!(identities["data"].as_array().unwrap().len(), 1, "{identities}");
    assert!(pair.actions("identity.unlinked").await.is_empty());

    // With it: unlinked, back to the account, where the "Link" button is again.
    let unlinked = browser.post(&unlink, &[("csrf_token", &csrf)]).await;
    assert_eq!(unlinked.status, StatusCode::SEE_OTHER, "{}", unlinked.body);
    assert_eq!(unlinked.location.as_deref(), Some("/account"));
    let (_, identities) = pair.app.get_auth("/v1/me/identities", &access).await;
    assert_eq!(identities["data"], json!([]));
    let events = pair.actions("identity.unlinked").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let account = browser.get("/account").await;
    assert!(unlink_actions(&account).is_empty());
    assert_eq!(link_buttons(&account), ["/sso/corp?link=1"]);
    // Again (gone now): the account page says so.
    let gone = browser.post(&unlink, &[("csrf_token", &csrf)]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert!(gone.body.contains("This linked account does not exist (any more)."), "{}", gone.body);
    pair.stop().await;
}

async fn the_last_way_to_sign_in_is_not_unlinked(test: TestDatabase) {
    // An account made by signing in through the upstream: no password, no passkey.
    let pair = pair(&test, true).await;
    pair.upstream_user("eli@example.com", true).await;
    let mut browser = Browser::new(&pair.app.base_url);
    let mut upstream = Browser::new(&pair.upstream.base_url);
    let landed = pair
        .through_upstream(
            &mut browser,
            &mut upstream,
            "/sso/corp?return_to=%2Faccount",
            "eli@example.com",
        )
        .await;
    assert_eq!(landed.location.as_deref(), Some("/account"), "{}", landed.body);
    let account = browser.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    let unlink = unlink_actions(&account);
    assert_eq!(unlink.len(), 1, "{}", account.body);
    let csrf = account.field("csrf_token").unwrap();

    let refused = browser.post(&unlink[0], &[("csrf_token", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body.contains(
            "<p class=\"alert\" role=\"alert\">This is the last way to sign in to this account"
        ),
        "{}",
        refused.body
    );
    // The page is the account page, the identity still listed, in the page's language too.
    assert_eq!(unlink_actions(&refused), unlink);
    let french = browser.post(&unlink[0], &[("csrf_token", &csrf), ("lang", "fr")]).await;
    assert_eq!(french.status, StatusCode::CONFLICT);
    assert!(french.body.contains("C’est le dernier moyen de vous connecter"), "{}", french.body);
    assert!(pair.actions("identity.unlinked").await.is_empty());
    pair.stop().await;
}
