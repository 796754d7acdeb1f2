//! The browser's cookies: reading the `Cookie` header, writing `Set-Cookie`, and the signed
//! cookie values (`<id>.<HMAC-SHA256>`) of the browser session and the trusted device. No
//! state: the `BrowserSession` extractor that reads the session cookie is `pages::session`'s.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::Digester;

/// The digest purpose of the browser-session cookie's signature.
pub const SESSION_COOKIE_PURPOSE: &str = "browser-session-cookie";
/// Digest purpose of the trusted-device cookie's signature.
pub const DEVICE_COOKIE_PURPOSE: &str = "trusted-device-cookie";

/// Longest cookie value we look at; a session id plus a signature is far shorter.
const MAX_COOKIE_VALUE_LENGTH: usize = 256;

/// The value of the first cookie called `name` in the request, if any. Browsers send the
/// most specific cookie first; with `Path=/` and host-only cookies there is one candidate.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    read_cookie_up_to(headers, name, MAX_COOKIE_VALUE_LENGTH)
}

/// [`read_cookie`] for a value up to `max_length` characters (a sealed value is longer than a
/// signed id).
pub fn read_cookie_up_to<'a>(
    headers: &'a HeaderMap,
    name: &str,
    max_length: usize,
) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie_name, _)| *cookie_name == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty() && value.len() <= max_length)
}

/// How a cookie is written. Every cookie is `HttpOnly; Path=/`, and `Secure` when the issuer
/// is https (then its name carries the `__Host-` prefix, which browsers only accept with
/// `Secure`, `Path=/` and no `Domain`: no sibling subdomain can plant or shadow it).
#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: String,
    pub same_site: &'static str,
    pub secure: bool,
}

impl CookieSpec {
    pub(crate) fn new(base_name: &str, same_site: &'static str, secure: bool) -> CookieSpec {
        let name = if secure { format!("__Host-{base_name}") } else { base_name.to_owned() };
        CookieSpec { name, same_site, secure }
    }

    /// A `Set-Cookie` value; `max_age` `None` makes a cookie that ends with the browser
    /// session, `Some(0)` deletes it.
    pub fn header(&self, value: &str, max_age: Option<i64>) -> Option<HeaderValue> {
        let mut text =
            format!("{}={value}; Path=/; HttpOnly; SameSite={}", self.name, self.same_site);
        if self.secure {
            text.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            text.push_str(&format!("; Max-Age={}", seconds.max(0)));
        }
        HeaderValue::from_str(&text).ok()
    }

    /// Appends the cookie to a response (several `Set-Cookie` headers may coexist).
    pub fn set(&self, response: &mut Response, value: &str, max_age: Option<i64>) {
        match self.header(value, max_age) {
            Some(header) => {
                response.headers_mut().append(SET_COOKIE, header);
            }
            // Values are ours (ids, base64url); this only guards against a future mistake.
            None => tracing::error!(cookie = %self.name, "cookie value is not a valid header"),
        }
    }

    /// Tells the browser to forget the cookie.
    pub fn clear(&self, response: &mut Response) {
        self.set(response, "", Some(0));
    }
}

/// Signs and checks browser-session cookie values.
pub struct SessionCookie {
    pub spec: CookieSpec,
    digester: Digester,
}

impl SessionCookie {
    pub(crate) fn new(digester: Digester, secure: bool) -> SessionCookie {
        SessionCookie { spec: CookieSpec::new("gatehouse_session", "Lax", secure), digester }
    }

    /// The trusted-device cookie: the same signed shape (`<token>.<HMAC>`), another name and
    /// key, so a session cookie can never pass for a device cookie or the reverse.
    pub(crate) fn device(digester: Digester, secure: bool) -> SessionCookie {
        SessionCookie { spec: CookieSpec::new("gatehouse_device", "Lax", secure), digester }
    }

    /// Where an impersonating admin's own session waits: signed with the session cookie's key
    /// (its value is a session id of the same kind), under another name.
    pub(crate) fn impersonator(digester: Digester, secure: bool) -> SessionCookie {
        SessionCookie { spec: CookieSpec::new("gatehouse_impersonator", "Lax", secure), digester }
    }

    /// The verified value of this cookie in a request, if any.
    pub fn from_headers<'a>(&self, headers: &'a axum::http::HeaderMap) -> Option<&'a str> {
        read_cookie(headers, &self.spec.name).and_then(|value| self.verify(value))
    }

    /// `<session id>.<base64url HMAC-SHA256 of the id>`.
    pub fn sign(&self, session_id: &str) -> String {
        format!(
            "{session_id}.{}",
            URL_SAFE_NO_PAD.encode(self.digester.digest(session_id.as_bytes()))
        )
    }

    /// The session id of a cookie value whose signature is ours, compared in constant time.
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (session_id, signature) = value.rsplit_once('.')?;
        if session_id.is_empty() || signature.len() != 43 {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.digester.verify(session_id.as_bytes(), &signature).then_some(session_id)
    }

    /// Sets the cookie for `session_id`; `max_age_seconds` is the session's remaining life, so
    /// the cookie never outlives what it names.
    pub fn set(&self, response: &mut Response, session_id: &str, max_age_seconds: i64) {
        self.spec.set(response, &self.sign(session_id), Some(max_age_seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_crypto::MasterKey;

    fn cookie() -> SessionCookie {
        SessionCookie::new(Digester::new(&MasterKey::generate(), SESSION_COOKIE_PURPOSE), false)
    }

    #[test]
    fn signed_values_verify_and_tampering_is_refused() {
        let cookie = cookie();
        let value = cookie.sign("ses_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b");
        assert_eq!(cookie.verify(&value), Some("ses_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b"));

        let (id, signature) = value.rsplit_once('.').unwrap();
        let other_id = format!("{}c", &id[..id.len() - 1]);
        assert_eq!(cookie.verify(&format!("{other_id}.{signature}")), None, "id swapped");
        let mut flipped = signature.to_owned();
        let last = if flipped.ends_with('A') { 'B' } else { 'A' };
        flipped.pop();
        flipped.push(last);
        assert_eq!(cookie.verify(&format!("{id}.{flipped}")), None, "signature changed");
        for bad in
            ["", ".", "ses_x", "ses_x.", ".abc", "ses_x.not base64 at all but 43 chars long!!"]
        {
            assert_eq!(cookie.verify(bad), None, "{bad:?}");
        }
        // Another key (another deployment, or a rotated master key) does not verify.
        assert_eq!(self::cookie().verify(&value), None);
    }

    #[test]
    fn cookie_headers_carry_the_security_attributes() {
        let plain = CookieSpec::new("gatehouse_session", "Lax", false);
        assert_eq!(
            plain.header("v", Some(60)).unwrap(),
            "gatehouse_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        let secure = CookieSpec::new("gatehouse_csrf", "Strict", true);
        assert_eq!(
            secure.header("v", None).unwrap(),
            "__Host-gatehouse_csrf=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            plain.header("", Some(0)).unwrap(),
            "gatehouse_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; gatehouse_session_x=2; gatehouse_session=3"),
        );
        headers.append(COOKIE, HeaderValue::from_static("gatehouse_session=4"));
        assert_eq!(read_cookie(&headers, "gatehouse_session"), Some("3"));
        assert_eq!(read_cookie(&headers, "a"), Some("1"));
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
