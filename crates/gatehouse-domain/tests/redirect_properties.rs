//! Property tests of redirect URIs, the untrusted input that decides where an authorization
//! code goes: registration refuses every URI a code must never reach, whatever the input, and
//! matching is exact (only a loopback redirect's port may differ).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_domain::oauth::client::{AUTH_NONE, ClientRecord, validate_redirect_uri};
use proptest::prelude::*;

fn client(redirect: &str) -> ClientRecord {
    ClientRecord {
        client_id: "app".into(),
        name: "App".into(),
        secret_digest: None,
        previous_secret_digest: None,
        previous_secret_expires_at: None,
        redirect_uris: vec![redirect.to_owned()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![],
        scopes: vec![],
        token_endpoint_auth_method: AUTH_NONE.into(),
        jwks: None,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        document_expires_at: None,
        skip_consent: false,
        access_token_ttl_seconds: None,
        refresh_token_ttl_seconds: None,
        created_at: 0,
        updated_at: 0,
        registration_token_digest: None,
    }
}

fn uri_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,60}",
        (
            "(https?|javascript|data|file|com\\.example\\.app|[a-z]{1,6})",
            "(//)?",
            "[a-z0-9.@:\\[\\]-]{0,24}",
            "(/[a-z0-9%#?=&-]{0,12}){0,3}"
        )
            .prop_map(|(scheme, slashes, host, path)| format!("{scheme}:{slashes}{host}{path}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever is registered is an absolute URL with no fragment and no credentials, https
    /// unless loopback http or a reverse-DNS private-use scheme, never a script or data URL.
    #[test]
    fn registration_accepts_only_safe_redirects(uri in uri_like()) {
        if validate_redirect_uri(&uri, "redirect_uris").is_ok() {
            let parsed = url::Url::parse(&uri).unwrap();
            prop_assert!(parsed.fragment().is_none());
            prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
            let scheme = parsed.scheme();
            prop_assert!(!["javascript", "data", "file", "vbscript"].contains(&scheme));
            if scheme == "http" {
                let host = parsed.host_str().unwrap_or_default();
                prop_assert!(
                    host == "localhost" || host.starts_with("127.") || host == "[::1]",
                    "http redirect to {host}"
                );
            } else {
                prop_assert!(scheme == "https" || scheme.contains('.'), "{scheme}");
            }
        }
    }

    /// A registered https redirect matches itself and nothing that differs from it.
    #[test]
    fn matching_is_exact(
        host in "[a-z]{1,10}\\.example\\.com",
        path in "(/[a-z0-9]{1,8}){0,3}",
        suffix in "[ -~]{1,8}",
        candidate in uri_like(),
    ) {
        let registered = format!("https://{host}{path}/cb");
        let client = client(&registered);
        prop_assert!(client.redirect_uri_matches(&registered));
        let extended = format!("{registered}{suffix}");
        prop_assert!(!client.redirect_uri_matches(&extended));
        prop_assert_eq!(client.redirect_uri_matches(&candidate), candidate == registered);
    }

    /// A loopback redirect accepts any port (RFC 8252 §7.3) but nothing else that differs.
    #[test]
    fn loopback_redirects_match_on_any_port(port in 1u16.., path in "(/[a-z0-9]{1,8}){1,3}", other in "(/[a-z0-9]{1,8}){1,3}") {
        let client = client(&format!("http://127.0.0.1{path}"));
        let same = format!("http://127.0.0.1:{port}{path}");
        prop_assert!(client.redirect_uri_matches(&same));
        let elsewhere = format!("http://127.0.0.1:{port}{other}");
        prop_assert_eq!(client.redirect_uri_matches(&elsewhere), other == path);
        let https = format!("https://127.0.0.1:{port}{path}");
        let named = format!("http://localhost:{port}{path}");
        prop_assert!(!client.redirect_uri_matches(&https));
        prop_assert!(!client.redirect_uri_matches(&named));
    }
}
