//! Unit tests of the page machinery: every template renders in every locale, output is
//! escaped, and page answers carry the security headers.

use axum::body::to_bytes;
use axum::http::HeaderMap;

use super::*;

fn pages(branding: Branding) -> Pages {
    Pages::new(branding, "http://localhost:8080", BrowserKeys::ephemeral()).unwrap()
}

async fn body_of(response: Response) -> String {
    String::from_utf8(to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

fn sample_context(template: &str) -> Value {
    match template {
        "login.html" => context! {
            return_to => "/oauth2/authorize?a=1&b=2", identifier => "ada", error => "login.error.invalid_credentials",
            signed_in_as => "ada@example.com", language_switch_url => "/login?lang=fr",
            signup_url => "/signup?return_to=%2Faccount", passkeys => true,
            providers => sample_providers(),
        },
        "signup.html" => context! {
            return_to => "/account", login_url => "/login?return_to=%2Faccount", email => "ada@example.com",
            first_name => "Ada", last_name => "", error => "signup.error.email_taken",
            issues => vec!["Too short."], sent => false, passkeys => true,
            providers => sample_providers(),
            language_switch_url => "/signup?lang=fr",
        },
        "error.html" => context! { kind => "csrf" },
        "account.html" => context! {
            name => "ada@example.com",
            sessions => vec![
                context! { id => "ses_1", current => true, user_agent => "Firefox", ip => "127.0.0.1", client_id => () },
                context! { id => "ses_2", current => false, user_agent => "", ip => "", client_id => "app" },
            ],
            applications => vec![context! { client_id => "app", name => "App", scopes => "openid email" }],
            mfa => context! {
                enabled => true, has_totp => true, backup_codes_remaining => 9,
                has_email => false, email_available => true, has_sms => false, sms_available => true,
                factors => vec![
                    context! { kind => "totp", phone_number => () },
                    context! { kind => "sms", phone_number => "+•••••••••78" },
                ],
            },
            devices => vec![context! { id => "tdv_1", user_agent => "Firefox", ip => "127.0.0.1" }],
            mfa_error => "account.mfa.wrong_password",
            passkeys => context! {
                available => true, offer => true,
                items => vec![
                    context! { id => "pk_1", name => "Laptop", created => "2026-12-06", last_used => (), synced => false, flagged => false },
                    context! { id => "pk_2", name => "Phone", created => "2026-12-01", last_used => "2026-12-05", synced => true, flagged => true },
                ],
            },
            passkey_error => "passkeys.error.last_method",
            linked_accounts => context! {
                shown => true,
                items => vec![
                    context! { id => "idn_1", provider_name => "Corp", kind => "oidc", email => "ada@corp.example", linked => "2026-12-06" },
                    context! { id => "idn_2", provider_name => "GitHub", kind => "github", email => (), linked => "2026-12-01" },
                ],
                link => vec![context! { href => "/sso/google?link=1", name => "Google", kind => "google" }],
            },
            linked_accounts_error => "linked_accounts.error.last_method",
        },
        "mfa.html" => context! {
            return_to => "/account", error => "mfa.error.replayed", notice => "mfa.code_sent",
            method => "totp", methods => vec!["totp", "backup_code", "email", "sms"],
        },
        "mfa_enrol.html" => context! {
            action => "/mfa/enrol", qr_svg => "<svg></svg>", secret => "JBSWY3DPEHPK3PXP",
            return_to => "/account", required => true, error => "mfa.error.invalid_code",
        },
        "factor_confirm.html" => context! {
            action => "/account/mfa/sms/confirm", kind => "sms", error => "mfa.error.expired",
        },
        "backup_codes.html" => context! {
            codes => vec!["abcde-fghjk", "mnpqr-stuvw"], continue_url => "/account",
        },
        "consent.html" => context! {
            client_name => "App", user_name => "ada@example.com", request => "client_id=app&scope=openid",
            scopes => vec![context! { name => "openid", known => true }, context! { name => "api:read", known => false }],
            organization => None::<&str>,
            organizations => vec![context! { id => "org_1", slug => "acme", name => "Acme" }],
        },
        "choose_organization.html" => context! {
            client_name => "App", user_name => "ada@example.com",
            parameters => vec![context! { name => "client_id", value => "app" }],
            organizations => vec![context! { id => "org_1", slug => "acme", name => "Acme" }],
        },
        "device.html" => context! {
            step => "confirm", user_code => "BCDF-GHJK", client_name => "TV",
            scopes => vec![context! { name => "profile", known => true }],
        },
        "end_session.html" => context! {
            name => "ada@example.com", id_token_hint => "", client_id => "app",
            post_logout_redirect_uri => "https://app.example/out", logout_state => "s",
        },
        "oauth_error.html" => context! { message => "The redirect_uri is not registered." },
        "forgot_password.html" => {
            context! { sent => false, error => "forgot_password.rate_limited" }
        }
        "email_link.html" => context! {
            page => "reset_password", action => "/reset-password", token => "t", return_to => "/account",
            password => true, show_form => true, done => false, error => "link_error.password",
            issues => vec!["Too short."],
        },
        "invitation.html" => context! {
            problem_key => None::<&str>, token => "t", organization => "Acme", role => "member",
        },
        _ => context! { name => "ada@example.com" },
    }
}

/// One provider of every kind, as `/login` and `/signup` list them.
fn sample_providers() -> Vec<Value> {
    ["google", "github", "microsoft", "apple", "linkedin", "oidc", "oauth2"]
        .into_iter()
        .map(|kind| {
            context! {
                href => format!("/sso/{kind}?return_to=%2Foauth2%2Fauthorize%3Fa%3D1%26b%3D2"),
                name => format!("<{kind}>"),
                kind => kind,
            }
        })
        .collect()
}

#[tokio::test]
async fn provider_buttons_have_an_inline_icon_each_and_escaped_words() {
    let pages = pages(Branding::default());
    let csrf = pages.csrf.for_request(&HeaderMap::new());
    let context = sample_context("login.html");
    let response = pages.render_form(StatusCode::OK, Locale::Fr, &csrf, "login.html", context);
    assert_eq!(response.headers()[CONTENT_SECURITY_POLICY], PAGE_CSP);
    let html = body_of(response).await;
    assert_eq!(html.matches("<a class=\"button provider\"").count(), 7, "{html}");
    assert_eq!(html.matches("<svg class=\"provider-icon\"").count(), 7, "{html}");
    assert!(html.contains("Continuer avec &lt;github&gt;"), "{html}");
    assert!(html.contains("fill=\"#F25022\""), "the Microsoft squares: {html}");
    // The generic key for both generic kinds, and nothing styled or scripted inline.
    assert_eq!(html.matches("<circle cx=\"8\" cy=\"15\"").count(), 2, "{html}");
    assert!(!html.contains("style=") && !html.contains("<script>"), "{html}");
    // Without providers: no buttons, no separator, no icons.
    let context = context! { providers => Vec::<Value>::new(), ..sample_context("signup.html") };
    let response = pages.render_form(StatusCode::OK, Locale::En, &csrf, "signup.html", context);
    let html = body_of(response).await;
    assert!(!html.contains("provider") && !html.contains("<svg"), "{html}");
}

#[tokio::test]
async fn every_template_renders_in_every_locale() {
    let pages = pages(Branding::default());
    let csrf = pages.csrf.for_request(&HeaderMap::new());
    for locale in Locale::ALL {
        for template in [
            "login.html",
            "logout.html",
            "account.html",
            "error.html",
            "consent.html",
            "choose_organization.html",
            "device.html",
            "end_session.html",
            "signed_out.html",
            "oauth_error.html",
            "email_link.html",
            "forgot_password.html",
            "signup.html",
            "mfa.html",
            "mfa_enrol.html",
            "invitation.html",
            "backup_codes.html",
            "factor_confirm.html",
        ] {
            let response = pages.render_form(
                StatusCode::OK,
                locale,
                &csrf,
                template,
                sample_context(template),
            );
            assert_eq!(response.status(), StatusCode::OK, "{template} in {}", locale.code());
            let html = body_of(response).await;
            assert!(html.contains(&format!("<html lang=\"{}\">", locale.code())), "{html}");
        }
    }
}

#[tokio::test]
async fn output_is_escaped_and_pages_carry_security_headers() {
    let pages = pages(Branding { product_name: "<Acme & Co>".into(), ..Branding::default() });
    let csrf = pages.csrf.for_request(&HeaderMap::new());
    let mut context = sample_context("logout.html");
    context = context! { name => "<script>alert(1)</script>", ..context };
    let response = pages.render_form(StatusCode::OK, Locale::En, &csrf, "logout.html", context);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_SECURITY_POLICY], PAGE_CSP);
    assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(
        headers[axum::http::header::SET_COOKIE].to_str().unwrap().starts_with("gatehouse_csrf=")
    );
    let html = body_of(response).await;
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("&lt;Acme &amp; Co&gt;"));
    assert!(html.contains(csrf.token()));
}

#[tokio::test]
async fn a_broken_render_is_a_bare_500_without_internals() {
    let pages = pages(Branding::default());
    let response = pages.render(Locale::En, "no-such-template.html", context! {});
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()[X_FRAME_OPTIONS], "DENY");
    let html = body_of(response).await;
    assert!(!html.contains("no-such-template"), "{html}");
    // An unknown message key is a rendering error too, caught here rather than shown.
    let response = pages.render(Locale::En, "error.html", context! { kind => "nonexistent" });
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn branding_reaches_the_stylesheet_and_the_csp() {
    let pages = pages(Branding {
        primary_color: "#aa0011".into(),
        logo_url: Some("http://localhost:9000/logo.png".into()),
        ..Branding::default()
    });
    assert!(pages.stylesheet.contains("--gh-primary: #aa0011;"));
    assert!(!pages.stylesheet.contains("#2f5bea"));
    assert_eq!(
        pages.content_security_policy,
        PAGE_CSP.replace("img-src 'self'", "img-src 'self' http://localhost:9000")
    );
    let html = body_of(pages.render(Locale::En, "error.html", context! { kind => "csrf" })).await;
    assert!(html.contains("src=\"http:&#x2f;&#x2f;localhost:9000&#x2f;logo.png\""), "{html}");
    assert!(
        Pages::new(
            Branding { primary_color: "red".into(), ..Branding::default() },
            "http://localhost",
            BrowserKeys::ephemeral()
        )
        .is_err()
    );
}

#[test]
fn colours_must_be_six_hex_digits() {
    for good in ["#2f5bea", "#FFFFFF", "#000000"] {
        assert!(is_hex_color(good), "{good}");
    }
    for bad in ["2f5bea", "#2f5be", "#2f5beaa", "#ggggggg", "#gggggg", "red", "", "#fff;}"] {
        assert!(!is_hex_color(bad), "{bad}");
    }
}

#[test]
fn https_issuers_give_secure_host_prefixed_cookies() {
    let pages =
        Pages::new(Branding::default(), "https://id.example", BrowserKeys::ephemeral()).unwrap();
    assert_eq!(pages.session_cookie.spec.name, "__Host-gatehouse_session");
    assert!(pages.session_cookie.spec.secure);
    assert_eq!(pages.csrf.spec.name, "__Host-gatehouse_csrf");
}
