//! `Pages`: what the hosted pages look like and how they answer — minijinja templates embedded
//! with `include_str!` (auto-escaped, `t("key")` over the catalogues), branding, the pages'
//! CSP and security headers, redirects, error pages ([`ErrorPage`]), and the cookie and CSRF
//! keys ([`BrowserKeys`], data keys of the key hierarchy). Built in `main` and held by the
//! state; imports no handler and no state.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, RETRY_AFTER, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_crypto::Digester;
use gatehouse_domain::{DomainError, Feature, StoreError};
use minijinja::value::Kwargs;
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior, Value, context};
use serde::Deserialize;

use super::catalogues::{Catalogues, interpolate};
use super::cookies::{CookieSpec, DEVICE_COOKIE_PURPOSE, SESSION_COOKIE_PURPOSE, SessionCookie};
use super::csrf::{CSRF_PURPOSE, Csrf, CsrfKey};
use super::return_to::DEFAULT_RETURN_TO;
use super::script::PageScript;
use crate::error::ErrorForLog;
use crate::locale::Locale;
/// The CSP of every page: our stylesheet only, no script at all, no framing. No
/// `form-action`: browsers apply it to the redirects that follow a form POST too, and the
/// sign-in and consent forms end in a redirect to the client's (registered) redirect URI.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

/// What the pages look like, from the `[branding]` configuration section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    pub product_name: String,
    /// An http(s) URL of the logo shown above every page.
    pub logo_url: Option<String>,
    /// `#rrggbb`, used for buttons, links and the card's top edge.
    pub primary_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self { product_name: "Gatehouse".into(), logo_url: None, primary_color: "#2f5bea".into() }
    }
}

/// Whether `text` is a `#rrggbb` colour (the only form substituted into the stylesheet).
pub fn is_hex_color(text: &str) -> bool {
    text.len() == 7
        && text.starts_with('#')
        && text.bytes().skip(1).all(|byte| byte.is_ascii_hexdigit())
}

/// The MAC keys of the browser cookies and the CSRF token, one data key per purpose.
pub struct BrowserKeys {
    pub session_cookie: Digester,
    pub device_cookie: Digester,
    pub csrf: Digester,
}

impl BrowserKeys {
    /// The digest purposes of these keys, for the list of data keys.
    pub const DIGEST_PURPOSES: [&'static str; 3] =
        [SESSION_COOKIE_PURPOSE, DEVICE_COOKIE_PURPOSE, CSRF_PURPOSE];

    /// The keys, each from the digester of its purpose.
    pub fn from_digesters<E>(
        mut digester: impl FnMut(&str) -> Result<Digester, E>,
    ) -> Result<BrowserKeys, E> {
        Ok(BrowserKeys {
            session_cookie: digester(SESSION_COOKIE_PURPOSE)?,
            device_cookie: digester(DEVICE_COOKIE_PURPOSE)?,
            csrf: digester(CSRF_PURPOSE)?,
        })
    }

    /// Random keys that live only in this process (tests).
    pub fn ephemeral() -> BrowserKeys {
        BrowserKeys {
            session_cookie: Digester::ephemeral(),
            device_cookie: Digester::ephemeral(),
            csrf: Digester::ephemeral(),
        }
    }
}

/// Everything the pages need, built once at start-up and shared through `AppState`.
pub struct Pages {
    environment: Environment<'static>,
    content_security_policy: HeaderValue,
    pub(crate) stylesheet: String,
    /// The passkeys script and the CSP of the pages that load it.
    pub(crate) passkeys_script: PageScript,
    pub(crate) session_cookie: SessionCookie,
    /// The admin's own session while they impersonate a user (signed like the session cookie).
    pub(crate) impersonator_cookie: SessionCookie,
    /// The signed trusted-device cookie (MFA skipped on that browser).
    pub(crate) device_cookie: SessionCookie,
    /// The MFA challenge token between `/login` and `/mfa` (five minutes).
    pub(crate) mfa_cookie: CookieSpec,
    pub(crate) csrf: CsrfKey,
    /// The message catalogues, for the few texts built outside templates.
    catalogues: std::sync::Arc<Catalogues>,
}

impl Pages {
    /// Parses the embedded templates and catalogues; the cookie and CSRF keys are `keys`.
    /// `issuer` decides the cookies' `Secure` flag and `__Host-` prefix.
    /// Fails only if an embedded file is broken or the branding is invalid.
    pub fn new(branding: Branding, issuer: &str, keys: BrowserKeys) -> Result<Pages, String> {
        if !is_hex_color(&branding.primary_color) {
            return Err(format!("primary colour {:?} is not #rrggbb", branding.primary_color));
        }
        let secure = issuer.starts_with("https://");
        // The dashboard's rules (scoped under `.admin`) travel in the same stylesheet.
        let stylesheet = [include_str!("assets/gatehouse.css"), include_str!("assets/admin.css")]
            .join("\n")
            .replacen(
                "--gh-primary: #2f5bea;",
                &format!("--gh-primary: {};", branding.primary_color),
                1,
            );
        let asset_version = format!("{:016x}", fnv1a(stylesheet.as_bytes()));
        let catalogues = std::sync::Arc::new(Catalogues::load()?);
        let environment = environment(&branding, &asset_version, catalogues.clone())?;
        let page_csp = csp_for(&branding);
        let content_security_policy = HeaderValue::from_str(&page_csp)
            .map_err(|_| "the logo URL cannot appear in a header".to_owned())?;
        let passkeys_script = PageScript::passkeys(&page_csp)?;
        Ok(Pages {
            environment,
            content_security_policy,
            stylesheet,
            passkeys_script,
            impersonator_cookie: SessionCookie::impersonator(keys.session_cookie.clone(), secure),
            session_cookie: SessionCookie::new(keys.session_cookie, secure),
            mfa_cookie: CookieSpec::new("gatehouse_mfa", "Lax", secure),
            device_cookie: SessionCookie::device(keys.device_cookie, secure),
            csrf: CsrfKey::new(keys.csrf, secure),
            catalogues,
        })
    }

    /// A refused field's message in the page's language: a broken password rule from the
    /// catalogues by its stable code (`password_rule.<code>`, with the policy's numbers), in
    /// English as the domain wrote it (which keeps the strength estimator's advice); anything
    /// else as the domain wrote it.
    pub(crate) fn issue_message(
        &self,
        locale: Locale,
        issue: &gatehouse_domain::FieldIssue,
        policy: &gatehouse_domain::passwords::PasswordPolicySettings,
    ) -> String {
        if locale == Locale::En {
            return issue.message.clone();
        }
        match self.catalogues.message(locale, &format!("password_rule.{}", issue.code)) {
            Some(message) => crate::browser::catalogues::interpolate(
                message,
                &[
                    ("min".to_owned(), policy.min_length.to_string()),
                    ("max".to_owned(), policy.max_length.to_string()),
                    ("count".to_owned(), policy.history_size.to_string()),
                ],
            ),
            None => issue.message.clone(),
        }
    }

    /// The signed browser-session cookie (for pages that sign people in or out).
    pub fn session_cookie(&self) -> &SessionCookie {
        &self.session_cookie
    }

    /// Renders `template` as a 200 HTML page.
    pub fn render(&self, locale: Locale, template: &str, context: Value) -> Response {
        self.render_status(StatusCode::OK, locale, template, context)
    }

    /// Renders `template` with `status`. The context gains `locale`; templates also see the
    /// globals `branding` and `asset_version` and the function `t("key", name=value)`. A
    /// rendering failure is logged and answered as a bare 500 page.
    pub fn render_status(
        &self,
        status: StatusCode,
        locale: Locale,
        template: &str,
        context: Value,
    ) -> Response {
        let context = context! { locale => locale.code(), ..context };
        let rendered =
            self.environment.get_template(template).and_then(|template| template.render(context));
        match rendered {
            Ok(html) => {
                let mut response = (status, html).into_response();
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                self.secure(response)
            }
            Err(error) => {
                tracing::error!(template, error = %error, "page rendering failed");
                self.secure(bare_internal_error())
            }
        }
    }

    /// Renders a page holding forms: adds `csrf_token` to the context and sets the CSRF
    /// cookie when the browser did not have one yet.
    pub fn render_form(
        &self,
        status: StatusCode,
        locale: Locale,
        csrf: &Csrf,
        template: &str,
        context: Value,
    ) -> Response {
        let context = context! { csrf_token => csrf.token(), ..context };
        let mut response = self.render_status(status, locale, template, context);
        csrf.set_cookie_if_new(&self.csrf, &mut response);
        response
    }

    /// [`Self::render_form`] for a page that runs the passkeys script: the context gains
    /// `script` (its tag's `src` and `integrity`) and the answer the CSP that allows it.
    pub fn render_form_with_script(
        &self,
        status: StatusCode,
        locale: Locale,
        csrf: &Csrf,
        template: &str,
        context: Value,
    ) -> Response {
        let context = context! { script => self.passkeys_script.tag(), ..context };
        let mut response = self.render_form(status, locale, csrf, template, context);
        response
            .headers_mut()
            .insert(CONTENT_SECURITY_POLICY, self.passkeys_script.content_security_policy.clone());
        response
    }

    /// An error as a page, logged once by the middleware like API errors.
    pub(crate) fn error_page(&self, locale: Locale, page: ErrorPage) -> Response {
        let mut response =
            self.render_status(page.status, locale, "error.html", context! { kind => page.kind });
        if page.status == StatusCode::SERVICE_UNAVAILABLE {
            // A backing service is down: when to come back, as the API's 503 answers say.
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
            );
        }
        response.extensions_mut().insert(ErrorForLog { code: page.code, internal: page.internal });
        response
    }

    /// A 303 to a same-origin path (validated by the caller with [`safe_return_to`]).
    pub fn redirect(&self, location: &str) -> Response {
        let location = HeaderValue::from_str(location)
            .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_RETURN_TO));
        let mut response = StatusCode::SEE_OTHER.into_response();
        response.headers_mut().insert(LOCATION, location);
        self.secure(response)
    }

    /// The page security headers (the middleware only adds defaults where these are absent).
    fn secure(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(CONTENT_SECURITY_POLICY, self.content_security_policy.clone());
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The CSP; an http:// logo (allowed in development) needs its origin in `img-src`.
fn csp_for(branding: &Branding) -> String {
    let http_logo_origin = branding.logo_url.as_deref().and_then(|url| {
        let rest = url.strip_prefix("http://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        // Only host[:port] characters: nothing that could end the directive or add another.
        let plain = !authority.is_empty()
            && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        plain.then(|| format!("http://{authority}"))
    });
    match http_logo_origin {
        Some(origin) => PAGE_CSP.replacen("img-src 'self'", &format!("img-src 'self' {origin}"), 1),
        None => PAGE_CSP.to_owned(),
    }
}

fn environment(
    branding: &Branding,
    asset_version: &str,
    catalogues: std::sync::Arc<Catalogues>,
) -> Result<Environment<'static>, String> {
    let mut environment = Environment::new();
    environment.set_auto_escape_callback(|_| AutoEscape::Html);
    // Printing an unknown variable is a bug to catch in tests, not an empty string.
    environment.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    let templates = [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("logout.html", include_str!("templates/logout.html")),
        ("account.html", include_str!("templates/account.html")),
        ("error.html", include_str!("templates/error.html")),
        ("consent.html", include_str!("templates/consent.html")),
        ("choose_organization.html", include_str!("templates/choose_organization.html")),
        ("oauth_error.html", include_str!("templates/oauth_error.html")),
        ("device.html", include_str!("templates/device.html")),
        ("end_session.html", include_str!("templates/end_session.html")),
        ("signed_out.html", include_str!("templates/signed_out.html")),
        ("email_link.html", include_str!("templates/email_link.html")),
        ("forgot_password.html", include_str!("templates/forgot_password.html")),
        ("signup.html", include_str!("templates/signup.html")),
        ("mfa.html", include_str!("templates/mfa.html")),
        ("mfa_enrol.html", include_str!("templates/mfa_enrol.html")),
        ("backup_codes.html", include_str!("templates/backup_codes.html")),
        ("factor_confirm.html", include_str!("templates/factor_confirm.html")),
        ("invitation.html", include_str!("templates/invitation.html")),
        ("provider_buttons.html", include_str!("templates/provider_buttons.html")),
        ("provider_icon.html", include_str!("templates/provider_icon.html")),
        ("account_profile.html", include_str!("templates/account_profile.html")),
        ("account_privacy.html", include_str!("templates/account_privacy.html")),
        ("account_deleted.html", include_str!("templates/account_deleted.html")),
        ("admin_base.html", include_str!("templates/admin_base.html")),
        ("admin_overview.html", include_str!("templates/admin_overview.html")),
        ("admin_users.html", include_str!("templates/admin_users.html")),
        ("admin_user.html", include_str!("templates/admin_user.html")),
        ("admin_audit.html", include_str!("templates/admin_audit.html")),
        ("admin_keys.html", include_str!("templates/admin_keys.html")),
        ("admin_api_keys.html", include_str!("templates/admin_api_keys.html")),
        ("admin_webhooks.html", include_str!("templates/admin_webhooks.html")),
        ("admin_webhook.html", include_str!("templates/admin_webhook.html")),
        ("admin_organizations.html", include_str!("templates/admin_organizations.html")),
        ("admin_organization.html", include_str!("templates/admin_organization.html")),
        ("admin_clients.html", include_str!("templates/admin_clients.html")),
        ("admin_client.html", include_str!("templates/admin_client.html")),
        ("admin_client_new.html", include_str!("templates/admin_client_new.html")),
        ("admin_client_secret.html", include_str!("templates/admin_client_secret.html")),
        ("admin_client_fields.html", include_str!("templates/admin_client_fields.html")),
        ("admin_verify.html", include_str!("templates/admin_verify.html")),
    ];
    for (name, source) in templates {
        environment
            .add_template(name, source)
            .map_err(|error| format!("template {name}: {error}"))?;
    }
    environment.add_function(
        "t",
        move |state: &State, key: &str, kwargs: Kwargs| -> Result<String, minijinja::Error> {
            let locale = state
                .lookup("locale")
                .and_then(|value| value.as_str().and_then(Locale::from_tag))
                .unwrap_or_default();
            let message = catalogues.message(locale, key).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("no message {key:?} in the catalogues"),
                )
            })?;
            let mut values = Vec::new();
            for name in kwargs.args() {
                values.push((name.to_owned(), kwargs.get::<Value>(name)?.to_string()));
            }
            Ok(interpolate(message, &values))
        },
    );
    environment.add_global(
        "branding",
        context! {
            product_name => branding.product_name.clone(),
            logo_url => branding.logo_url.clone(),
        },
    );
    environment.add_global("asset_version", asset_version.to_owned());
    Ok(environment)
}

/// FNV-1a: a stable fingerprint of the stylesheet for cache-busting its URL (not security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn bare_internal_error() -> Response {
    let body = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Error</title>\
                <h1>Something went wrong</h1><p>The problem has been logged. Try again later.</p>";
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// An error answered as a page: its status, the message group under `error.` in the
/// catalogues, the code logged, and an internal cause that is logged, never shown.
pub(crate) struct ErrorPage {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    internal: Option<String>,
}

impl ErrorPage {
    pub(crate) fn csrf() -> ErrorPage {
        ErrorPage {
            status: StatusCode::FORBIDDEN,
            kind: "csrf",
            code: "csrf_failed",
            internal: None,
        }
    }

    pub(crate) fn bad_request() -> ErrorPage {
        ErrorPage {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            code: "bad_request",
            internal: None,
        }
    }

    /// The rate limiter's store is down for a budget that fails closed (503).
    pub(crate) fn limiter_unavailable() -> ErrorPage {
        ErrorPage {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable",
            code: "service_unavailable",
            internal: Some("the rate limiter's store is unavailable".into()),
        }
    }

    pub(crate) fn from_domain(error: &DomainError) -> ErrorPage {
        let (status, kind) = match error {
            DomainError::Store(StoreError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            DomainError::Disabled(Feature::SignUp) => (StatusCode::FORBIDDEN, "signup_disabled"),
            DomainError::EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified"),
            DomainError::AccountSuspended => (StatusCode::FORBIDDEN, "account_suspended"),
            DomainError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            DomainError::Impersonating => (StatusCode::FORBIDDEN, "impersonating"),
            DomainError::Validation(_) | DomainError::Invalid(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            DomainError::Federation(problem) => {
                use gatehouse_domain::error::FederationProblem;
                let status = crate::error::federation_error(problem, error.code()).status();
                let kind = match problem {
                    FederationProblem::AccountExists => "sso_account_exists",
                    FederationProblem::IdentityTaken => "sso_identity_taken",
                    FederationProblem::SignUpClosed => "signup_disabled",
                    FederationProblem::UpstreamUnavailable(_) => "unavailable",
                    _ => "sso_failed",
                };
                (status, kind)
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ErrorPage { status, kind, code: error.code(), internal: Some(error.to_string()) }
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> ErrorPage {
        self.status = status;
        self
    }
}

#[cfg(test)]
mod tests;
