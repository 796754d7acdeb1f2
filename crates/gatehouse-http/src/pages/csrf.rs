//! Cross-site request forgery defence for every hosted form: a signed double-submit token.
//!
//! The browser holds a random value in an `HttpOnly; SameSite=Strict` cookie (`__Host-`
//! prefixed under https, so no subdomain can plant one); each form carries
//! `base64url(HMAC-SHA256(key, cookie value))`. A forged cross-site POST has neither the cookie
//! (SameSite) nor a way to compute the token (the key), and a planted cookie would need a token
//! only the server can make.
//!
//! Handlers use [`PageRequest`] on GET (locale + CSRF token to render) and [`PageForm<T>`] on
//! POST (the form, parsed only once its token checked out; otherwise a 403 page).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{Digester, constant_time_eq, random_token};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::cookies::{CookieSpec, read_cookie};
use super::{ErrorPage, Locale, accept_language};
use crate::state::AppState;

/// The digest purpose of CSRF tokens.
pub const CSRF_PURPOSE: &str = "browser-csrf";

/// The name of the hidden field every form carries.
pub const CSRF_FIELD: &str = "csrf_token";

/// Signs CSRF cookie values; held by [`super::Pages`].
pub struct CsrfKey {
    pub spec: CookieSpec,
    digester: Digester,
}

impl CsrfKey {
    pub(crate) fn new(digester: Digester, secure: bool) -> CsrfKey {
        CsrfKey { spec: CookieSpec::new("gatehouse_csrf", "Strict", secure), digester }
    }

    fn token_for(&self, cookie_value: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.digester.digest(cookie_value.as_bytes()))
    }

    /// The browser's CSRF state: its cookie if it sent a well-formed one, else a new value
    /// (the response must then set it, which [`super::Pages::render_form`] does).
    pub fn for_request(&self, headers: &HeaderMap) -> Csrf {
        let sent = read_cookie(headers, &self.spec.name).filter(|value| {
            value.len() == 43
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        let (cookie_value, fresh) = match sent {
            Some(value) => (value.to_owned(), false),
            None => (random_token(), true),
        };
        let token = self.token_for(&cookie_value);
        Csrf { cookie_value, fresh, token }
    }
}

/// One request's CSRF state. Put [`Csrf::token`] in a hidden `csrf_token` field.
pub struct Csrf {
    cookie_value: String,
    /// The browser sent no (usable) cookie: nothing it submits can be valid.
    fresh: bool,
    token: String,
}

impl Csrf {
    /// The value of the hidden `csrf_token` field.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a submitted token matches this browser's cookie (constant time).
    pub fn verify(&self, submitted: &str) -> bool {
        !self.fresh && constant_time_eq(submitted.as_bytes(), self.token.as_bytes())
    }

    /// Sets the cookie when the browser did not have one yet.
    pub fn set_cookie_if_new(&self, key: &CsrfKey, response: &mut Response) {
        if self.fresh {
            key.spec.set(response, &self.cookie_value, None);
        }
    }
}

impl FromRequestParts<AppState> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(state.pages.csrf.for_request(&parts.headers))
    }
}

/// The language parameters a page accepts in its query or form.
#[derive(Debug, Default, Deserialize)]
struct LocaleParameters {
    lang: Option<String>,
    ui_locales: Option<String>,
}

fn locale_from_query(parts: &Parts) -> Option<Locale> {
    let query: LocaleParameters =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    query
        .lang
        .as_deref()
        .and_then(Locale::from_tag)
        .or_else(|| query.ui_locales.as_deref().and_then(Locale::from_ui_locales))
}

/// What every GET of a page needs: the language and the CSRF state for its forms.
pub struct PageRequest {
    pub locale: Locale,
    pub csrf: Csrf,
}

impl FromRequestParts<AppState> for PageRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let locale = locale_from_query(parts)
            .unwrap_or_else(|| Locale::negotiate(None, None, accept_language(&parts.headers)));
        Ok(PageRequest { locale, csrf: state.pages.csrf.for_request(&parts.headers) })
    }
}

/// A POSTed page form (`application/x-www-form-urlencoded`) whose CSRF token checked out.
/// Rejections are pages: 403 for a missing or wrong token (nothing else happens), 400 for a
/// malformed body, 413/415 for an oversized or non-form body. `T` ignores `csrf_token`,
/// `lang` and `ui_locales` unless it wants them (don't use `deny_unknown_fields`).
pub struct PageForm<T> {
    pub locale: Locale,
    pub csrf: Csrf,
    pub fields: T,
}

#[derive(Deserialize)]
struct FormEnvelope {
    csrf_token: Option<String>,
    lang: Option<String>,
    ui_locales: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let pages = &state.pages;
        let fallback_locale = locale_from_query(&parts)
            .unwrap_or_else(|| Locale::negotiate(None, None, accept_language(&parts.headers)));
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|value| {
                value.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(pages.error_page(
                fallback_locale,
                ErrorPage::bad_request().with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ));
        }
        let csrf = pages.csrf.for_request(&parts.headers);
        let request = Request::from_parts(parts, body);
        let bytes = match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => {
                let page = ErrorPage::bad_request().with_status(rejection.status());
                return Err(pages.error_page(fallback_locale, page));
            }
        };
        let envelope: FormEnvelope = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| pages.error_page(fallback_locale, ErrorPage::bad_request()))?;
        // The form's own choice (a hidden `lang` keeps the one the page was shown in) wins.
        let locale = envelope
            .lang
            .as_deref()
            .and_then(Locale::from_tag)
            .or_else(|| envelope.ui_locales.as_deref().and_then(Locale::from_ui_locales))
            .unwrap_or(fallback_locale);
        if !envelope.csrf_token.as_deref().is_some_and(|token| csrf.verify(token)) {
            return Err(pages.error_page(locale, ErrorPage::csrf()));
        }
        let fields: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| pages.error_page(locale, ErrorPage::bad_request()))?;
        Ok(PageForm { locale, csrf, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;
    use gatehouse_crypto::MasterKey;

    #[test]
    fn tokens_are_bound_to_the_browser_cookie() {
        let key = CsrfKey::new(Digester::new(&MasterKey::generate(), CSRF_PURPOSE), false);
        let fresh = key.for_request(&HeaderMap::new());
        assert!(!fresh.verify(fresh.token()), "a browser without the cookie cannot submit");

        let mut headers = HeaderMap::new();
        let cookie = format!("gatehouse_csrf={}", fresh.cookie_value);
        headers.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
        let returning = key.for_request(&headers);
        assert!(returning.verify(fresh.token()), "the token rendered earlier is accepted");
        assert!(!returning.verify(""));
        assert!(!returning.verify(&fresh.cookie_value), "the cookie value is not the token");

        let other = key.for_request(&HeaderMap::new());
        assert!(!returning.verify(other.token()), "another browser's token is refused");

        let mut forged = HeaderMap::new();
        forged.insert(COOKIE, HeaderValue::from_static("gatehouse_csrf=short"));
        assert!(key.for_request(&forged).fresh, "a malformed cookie is replaced");
    }
}
