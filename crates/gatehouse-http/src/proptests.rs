//! Property tests of every parser of untrusted input in the HTTP crate: form and JSON bodies,
//! cookies and CSRF tokens, `return_to`, `X-Forwarded-For` and `Accept-Language`. Whatever
//! arrives, none panics and none answers a 5xx; what we write, we read back unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest};
use axum::http::header::{ACCEPT_LANGUAGE, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{HeaderMap, HeaderValue, Request};
use axum::response::IntoResponse;
use gatehouse_crypto::Digester;
use ipnet::IpNet;
use proptest::prelude::*;
use serde::Deserialize;

use crate::browser::cookies::{SessionCookie, read_cookie};
use crate::browser::csrf::CsrfKey;
use crate::browser::return_to::{MAX_RETURN_TO_LENGTH, safe_return_to};
use crate::client::client_ip;
use crate::extract::ApiJson;
use crate::locale::Locale;
use crate::routes::oauth::form::OAuthForm;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

/// Printable header text (what `HeaderValue` accepts), including separators and noise.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,120}", "[0-9a-fA-F:., ;=q-]{0,80}"]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any::<[u8; 4]>().prop_map(IpAddr::from), any::<[u16; 8]>().prop_map(IpAddr::from),]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SignUpBody {
    email: String,
    password: String,
    first_name: Option<String>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any body under any content type: the JSON extractor accepts it or answers 4xx.
    #[test]
    fn json_bodies_never_answer_5xx(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "[ -~]{0,200}".prop_map(String::into_bytes),
            ("\\PC{0,20}", "\\PC{0,20}").prop_map(|(email, password)| {
                serde_json::json!({ "email": email, "password": password }).to_string().into_bytes()
            }),
        ],
        content_type in prop_oneof![
            Just("application/json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            "[ -~]{0,40}",
        ],
    ) {
        let mut request = Request::post("/").body(Body::from(body)).unwrap();
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            request.headers_mut().insert(CONTENT_TYPE, value);
        }
        match block_on(ApiJson::<SignUpBody>::from_request(request, &())) {
            Ok(_) => {}
            Err(rejection) => {
                let status = rejection.into_response().status();
                prop_assert!(status.is_client_error(), "{status}");
            }
        }
    }

    /// Any form body: parsed or refused with an OAuth 4xx; distinct pairs round-trip.
    #[test]
    fn oauth_forms_parse_or_refuse(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        pairs in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,24}", 0..8),
    ) {
        let request = Request::post("/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        if let Err(rejection) = block_on(OAuthForm::from_request(request, &())) {
            prop_assert!(rejection.into_response().status().is_client_error());
        }
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter())
            .finish();
        let request = Request::post("/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(encoded))
            .unwrap();
        let form = block_on(OAuthForm::from_request(request, &()));
        let form = match form {
            Ok(form) => form,
            Err(_) => return Err(TestCaseError::fail("a well-formed form was refused")),
        };
        prop_assert_eq!(form.parameters.len(), pairs.len());
        for (name, value) in &pairs {
            prop_assert_eq!(form.parameters.get(name), Some(value));
        }
    }

    /// Any `Authorization` header with any form: client credentials are read or refused with
    /// an OAuth 4xx, never a panic.
    #[test]
    fn client_credentials_never_panic(
        authorization in header_text(),
        client_id in proptest::option::of("\\PC{0,20}"),
        secret in proptest::option::of("\\PC{0,20}"),
        assertion_type in proptest::option::of(prop_oneof![
            Just("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            "[ -~]{0,30}",
        ]),
        assertion in proptest::option::of("[ -~]{0,80}"),
    ) {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("client_assertion_type", &assertion_type),
            ("client_assertion", &assertion),
        ] {
            if let Some(value) = value {
                serializer.append_pair(name, value);
            }
        }
        let mut request = Request::post("/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(serializer.finish()))
            .unwrap();
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let form = block_on(OAuthForm::from_request(request, &()));
        let Ok(form) = form else { return Err(TestCaseError::fail("form refused")) };
        if let Err(rejection) = form.client_credentials() {
            prop_assert!(rejection.into_response().status().is_client_error());
        }
    }

    /// `return_to`: whatever is kept is a same-origin path; plain paths are kept unchanged.
    #[test]
    fn return_to_keeps_only_same_origin_paths(candidate in "\\PC{0,80}", path in "(/[a-z0-9._~%-]{1,12}){1,6}(\\?[a-z0-9=&]{0,20})?") {
        if let Some(kept) = safe_return_to(&candidate) {
            prop_assert_eq!(kept, candidate.as_str());
            prop_assert!(kept.starts_with('/'));
            prop_assert!(!kept.starts_with("//") && !kept.starts_with("/\\"));
            prop_assert!(kept.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'\\'));
            prop_assert!(kept.len() <= MAX_RETURN_TO_LENGTH);
        }
        prop_assert_eq!(safe_return_to(&path), Some(path.as_str()));
    }

    /// Cookies: any header is read without panic; a cookie we wrote among others reads back.
    #[test]
    fn cookies_read_back_and_tolerate_noise(
        noise in header_text(),
        others in proptest::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9_-]{1,20}"), 0..4),
        value in "[A-Za-z0-9_-]{1,64}",
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(noise) = HeaderValue::from_str(&noise) {
            headers.append(COOKIE, noise);
            let _ = read_cookie(&headers, "gatehouse_session");
        }
        let mut pairs: Vec<String> =
            others.iter().map(|(name, value)| format!("{name}={value}")).collect();
        pairs.insert(pairs.len() / 2, format!("gatehouse_session={value}"));
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
        prop_assert_eq!(read_cookie(&headers, "gatehouse_session"), Some(value.as_str()));
    }

    /// Signed session cookies: ours verify to the id we signed; anything else is refused.
    #[test]
    fn session_cookies_verify_only_what_we_signed(id in "[A-Za-z0-9_]{1,40}", forged in "[ -~]{0,100}") {
        let cookie = SessionCookie::new(Digester::ephemeral(), false);
        let signed = cookie.sign(&id);
        prop_assert_eq!(cookie.verify(&signed), Some(id.as_str()));
        prop_assert_eq!(cookie.verify(&forged), None);
        let other = SessionCookie::new(Digester::ephemeral(), false);
        prop_assert_eq!(other.verify(&signed), None);
    }

    /// CSRF: the token of a browser's cookie verifies for it; a guessed token never does, and
    /// a browser without a (well-formed) cookie can submit nothing valid.
    #[test]
    fn csrf_tokens_only_match_their_cookie(cookie in "[A-Za-z0-9_-]{43}", guess in "[ -~]{0,60}", noise in header_text()) {
        let key = CsrfKey::new(Digester::ephemeral(), false);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(&format!("gatehouse_csrf={cookie}")).unwrap());
        let csrf = key.for_request(&headers);
        prop_assert!(csrf.verify(csrf.token()));
        prop_assert!(guess == csrf.token() || !csrf.verify(&guess));
        let mut headers = HeaderMap::new();
        if let Ok(noise) = HeaderValue::from_str(&noise) {
            headers.insert(COOKIE, noise);
        }
        let fresh = key.for_request(&headers);
        if read_cookie(&headers, "gatehouse_csrf").is_none() {
            prop_assert!(!fresh.verify(fresh.token()));
        }
    }

    /// `X-Forwarded-For`: whatever a trusted proxy forwards, the client address is the peer or
    /// an address written in the header; behind one trusted proxy, a list of untrusted
    /// addresses names its rightmost one (the one the proxy saw).
    #[test]
    fn forwarded_for_names_an_address_it_contains(
        header in header_text(),
        chain in proptest::collection::vec(ip(), 1..5),
    ) {
        let proxy = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 443));
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let request = |value: &str| {
            let mut request = Request::get("/").body(()).unwrap();
            request.extensions_mut().insert(ConnectInfo(proxy));
            if let Ok(value) = HeaderValue::from_str(value) {
                request.headers_mut().insert("x-forwarded-for", value);
            }
            request.into_parts().0
        };
        let found = client_ip(&request(&header), &trusted).unwrap();
        prop_assert!(
            found == proxy.ip() || header.contains(&found.to_string())
                || header.split(',').filter_map(|item| item.trim().parse::<IpAddr>().ok()).any(|ip| ip == found),
            "{found} from {header:?}"
        );
        let untrusted: Vec<IpAddr> = chain
            .into_iter()
            .filter(|ip| !trusted.iter().any(|net| net.contains(ip)))
            .collect();
        prop_assume!(!untrusted.is_empty());
        let list = untrusted.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let found = client_ip(&request(&list), &trusted).unwrap();
        prop_assert_eq!(Some(&found), untrusted.last());
    }

    /// `Accept-Language`: any header is read without panic; of supported languages with
    /// distinct weights, the heaviest wins.
    #[test]
    fn accept_language_prefers_the_heaviest_supported_tag(
        header in header_text(),
        english in 1u16..=1000,
        french in 1u16..=1000,
        region in "[A-Z]{2}",
    ) {
        let _ = Locale::from_accept_language(&header);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&header) {
            headers.insert(ACCEPT_LANGUAGE, value);
            let _ = Locale::from_headers(&headers);
        }
        prop_assume!(english != french);
        let weight = |value: u16| format!("{}.{:03}", value / 1000, value % 1000);
        let header = format!("de;q=1, en-{region};q={}, fr;q={}", weight(english), weight(french));
        let expected = if english > french { Locale::En } else { Locale::Fr };
        prop_assert_eq!(Locale::from_accept_language(&header), Some(expected));
    }
}
