//! Cross-site request forgery defence for every hosted form: a signed double-submit token.
//!
//! The browser holds a random value in an `HttpOnly; SameSite=Strict` cookie (`__Host-`
//! prefixed under https, so no subdomain can plant one); each form carries
//! `base64url(HMAC-SHA256(key, cookie value))`. A forged cross-site POST has neither the cookie
//! (SameSite) nor a way to compute the token (the key), and a planted cookie would need a token
//! only the server can make.
//!
//! This module holds the key and the token check; handlers get them through the extractors of
//! `pages::request`: `PageRequest` on GET (locale + CSRF token to render) and `PageForm<T>` on
//! POST (the form, parsed only once its token checked out; otherwise a 403 page).

use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{Digester, constant_time_eq, random_token};

use super::cookies::{CookieSpec, read_cookie};

/// The digest purpose of CSRF tokens.
pub const CSRF_PURPOSE: &str = "browser-csrf";

/// The name of the hidden field every form carries.
pub const CSRF_FIELD: &str = "csrf_token";

/// Signs CSRF cookie values; held by `Pages`.
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
    /// (the response must then set it, which `Pages::render_form` does).
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
