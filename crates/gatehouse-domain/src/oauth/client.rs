//! OAuth clients: registration rules (exact redirect URIs, RFC 8252 loopback ports, allowed
//! grants and scopes) and the stored record. Secrets are stored as keyed digests.

use serde::Serialize;

use crate::error::FieldIssue;

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Token exchange (RFC 8693).
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const SUPPORTED_GRANTS: &[&str] = &[
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE,
    GRANT_TOKEN_EXCHANGE,
];

pub const AUTH_CLIENT_SECRET_BASIC: &str = "client_secret_basic";
pub const AUTH_CLIENT_SECRET_POST: &str = "client_secret_post";
pub const AUTH_NONE: &str = "none";
pub const AUTH_PRIVATE_KEY_JWT: &str = "private_key_jwt";
pub const SUPPORTED_AUTH_METHODS: &[&str] =
    &[AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST, AUTH_PRIVATE_KEY_JWT, AUTH_NONE];
/// RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Client secrets we generate: `gtc_…` with a checksum (`ghs_…` before), so secret scanners
/// can recognise a leaked one. Secrets chosen by an operator (32+ characters) have any shape.
pub const CLIENT_SECRET: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtc_", legacy_prefix: "ghs_" };
pub const CLIENT_SECRET_DIGEST_PURPOSE: &str = "client-secret";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_digest: Option<Vec<u8>>,
    #[serde(skip)]
    pub previous_secret_digest: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<i64>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// The client's public keys (JWK Set) for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    pub skip_consent: bool,
    /// Its authorization requests must be pushed first (RFC 9126 §6): `/oauth2/authorize`
    /// accepts only a `request_uri` from it.
    pub require_pushed_authorization_requests: bool,
    /// Every access token it gets must be DPoP-bound (RFC 9449 §5.2): the token endpoint
    /// answers `invalid_dpop_proof` to a request without a proof.
    pub dpop_bound_access_tokens: bool,
    /// Where logout tokens are sent when a session it holds ends (OpenID Connect Back-Channel
    /// Logout 1.0); its sessions opened in a browser session also end with it.
    pub backchannel_logout_uri: Option<String>,
    /// It requires `sid` in logout tokens (always sent; kept as registered).
    pub backchannel_logout_session_required: bool,
    pub access_token_ttl_seconds: Option<i64>,
    pub refresh_token_ttl_seconds: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The keyed digest of the registration access token of a dynamically registered client
    /// (RFC 7592), which manages its registration; `None` for clients an admin registered.
    #[serde(skip)]
    pub registration_token_digest: Option<Vec<u8>>,
    /// A client described by its client ID metadata document (`client_id` is the document's
    /// URL): until when the stored copy is served before the document is fetched again.
    /// `None` for every other client.
    pub document_expires_at: Option<i64>,
}

/// The families of client authentication (RFC 7591 §2 names the methods). A client proves
/// itself only with a method of its registered family: `client_secret_basic` and
/// `client_secret_post` are one family (the same secret, sent two ways), `private_key_jwt`
/// another, `none` (public clients) the third.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFamily {
    Secret,
    Jwt,
    None,
}

impl AuthFamily {
    /// The family of a registered `token_endpoint_auth_method`; an unknown method belongs to
    /// none, so it authenticates nothing.
    pub fn of(method: &str) -> Option<AuthFamily> {
        match method {
            AUTH_CLIENT_SECRET_BASIC | AUTH_CLIENT_SECRET_POST => Some(AuthFamily::Secret),
            AUTH_PRIVATE_KEY_JWT => Some(AuthFamily::Jwt),
            AUTH_NONE => Some(AuthFamily::None),
            _ => None,
        }
    }
}

impl ClientRecord {
    /// A client registered with `dpop_bound_access_tokens` gets no token without a proof.
    pub fn check_dpop(&self, dpop_jkt: Option<&str>) -> Result<(), super::OAuthError> {
        if self.dpop_bound_access_tokens && dpop_jkt.is_none() {
            return Err(super::OAuthError::InvalidDpopProof(
                "this client's tokens must be DPoP-bound: send a DPoP proof".into(),
            ));
        }
        Ok(())
    }

    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AUTH_NONE
    }

    /// The family of the client's registered authentication method.
    pub fn auth_family(&self) -> Option<AuthFamily> {
        AuthFamily::of(&self.token_endpoint_auth_method)
    }

    /// Moves the client to another authentication method. Credentials of a family it leaves
    /// are dropped at once: a client moved to `private_key_jwt` or to public keeps no secret
    /// (so the old one stops working), one moved away from `private_key_jwt` keeps no keys.
    pub fn set_authentication(&mut self, method: &str, jwks: Option<serde_json::Value>) {
        self.token_endpoint_auth_method = method.to_owned();
        let family = AuthFamily::of(method);
        if family != Some(AuthFamily::Secret) {
            self.secret_digest = None;
            self.previous_secret_digest = None;
            self.previous_secret_expires_at = None;
        }
        self.jwks = if family == Some(AuthFamily::Jwt) { jwks } else { None };
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|allowed| allowed == grant)
    }

    /// Exact string match, except that a registered loopback redirect (`http://127.0.0.1/…`
    /// or `http://[::1]/…`) accepts any port, as native apps bind an ephemeral one (RFC 8252
    /// §7.3).
    pub fn redirect_uri_matches(&self, candidate: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == candidate || loopback_match(registered, candidate))
    }
}

fn loopback_match(registered: &str, candidate: &str) -> bool {
    let (Ok(registered), Ok(candidate)) = (url::Url::parse(registered), url::Url::parse(candidate))
    else {
        return false;
    };
    let loopback = |url: &url::Url| {
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            }
    };
    loopback(&registered)
        && loopback(&candidate)
        && registered.host() == candidate.host()
        && registered.path() == candidate.path()
        && registered.query() == candidate.query()
        && candidate.fragment().is_none()
        && candidate.username().is_empty()
        && candidate.password().is_none()
}

/// Checks one redirect URI for registration: absolute, no fragment, https unless loopback or a
/// private-use scheme of a native app (`com.example.app:/callback`).
pub fn validate_redirect_uri(uri: &str, field: &str) -> Result<(), FieldIssue> {
    let invalid =
        |message: &str| FieldIssue::new(field, "invalid_redirect_uri", format!("{uri}: {message}"));
    let parsed = url::Url::parse(uri).map_err(|_| invalid("not an absolute URL"))?;
    if parsed.fragment().is_some() {
        return Err(invalid("must not contain a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(domain)) => domain == "localhost",
                None => false,
            };
            if loopback { Ok(()) } else { Err(invalid("http is only allowed on loopback")) }
        }
        "javascript" | "data" | "file" | "vbscript" => Err(invalid("scheme not allowed")),
        // Private-use schemes of native apps must contain a dot (RFC 8252 §7.1).
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(invalid("use https, loopback http, or a reverse-DNS private-use scheme")),
    }
}

/// Checks a `backchannel_logout_uri` for registration: an absolute http(s) URL without a
/// fragment or credentials, at most 2048 characters (§2.2). Where it may point (https, public
/// addresses) is the outbound SSRF rule's, applied at each delivery.
pub fn validate_backchannel_logout_uri(uri: &str) -> Result<(), FieldIssue> {
    let field = "backchannel_logout_uri";
    let invalid = |message: &str| FieldIssue::new(field, "invalid", format!("{uri}: {message}"));
    if uri.len() > 2048 {
        return Err(invalid("at most 2048 characters"));
    }
    let parsed = url::Url::parse(uri).map_err(|_| invalid("not an absolute URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(invalid("an http or https URL"));
    }
    if parsed.fragment().is_some() {
        return Err(invalid("must not contain a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("must not contain credentials"));
    }
    Ok(())
}

/// A scope token per RFC 6749 §3.3 (printable ASCII except space, `"` and `\`).
pub fn valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 128
        && scope.bytes().all(|byte| {
            byte == 0x21 || (0x23..=0x5B).contains(&byte) || (0x5D..=0x7E).contains(&byte)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(redirects: &[&str]) -> ClientRecord {
        ClientRecord {
            client_id: "app".into(),
            name: "App".into(),
            secret_digest: None,
            previous_secret_digest: None,
            previous_secret_expires_at: None,
            redirect_uris: redirects.iter().map(|uri| uri.to_string()).collect(),
            post_logout_redirect_uris: vec![],
            grant_types: vec![],
            scopes: vec![],
            token_endpoint_auth_method: AUTH_NONE.into(),
            jwks: None,
            skip_consent: false,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            document_expires_at: None,
            access_token_ttl_seconds: None,
            refresh_token_ttl_seconds: None,
            created_at: 0,
            updated_at: 0,
            registration_token_digest: None,
        }
    }

    #[test]
    fn redirect_uris_match_exactly_or_on_any_loopback_port() {
        let registered = client(&[
            "https://app.example.com/callback",
            "http://127.0.0.1/cb",
            "http://[::1]:1234/cb",
        ]);
        let cases = [
            ("https://app.example.com/callback", true),
            ("https://app.example.com/callback/", false),
            ("https://app.example.com/callback?x=1", false),
            ("https://APP.example.com/callback", false),
            ("https://app.example.com.evil.com/callback", false),
            ("http://app.example.com/callback", false),
            ("http://127.0.0.1:53121/cb", true),
            ("http://127.0.0.1/cb", true),
            ("http://127.0.0.1:53121/other", false),
            ("http://127.0.0.1:53121/cb#frag", false),
            ("http://localhost:53121/cb", false),
            ("http://[::1]:999/cb", true),
            ("https://127.0.0.1:53121/cb", false),
        ];
        for (candidate, expected) in cases {
            assert_eq!(registered.redirect_uri_matches(candidate), expected, "{candidate}");
        }
    }

    #[test]
    fn registration_refuses_unsafe_redirect_uris() {
        for (uri, ok) in [
            ("https://app.example.com/cb", true),
            ("http://127.0.0.1/cb", true),
            ("http://localhost:3000/cb", true),
            ("com.example.app:/oauth", true),
            ("http://app.example.com/cb", false),
            ("https://app.example.com/cb#x", false),
            ("javascript:alert(1)", false),
            ("myapp:/cb", false),
            ("/relative", false),
            ("https://user:pass@app.example.com/cb", false),
        ] {
            assert_eq!(validate_redirect_uri(uri, "redirect_uris").is_ok(), ok, "{uri}");
        }
    }

    #[test]
    fn leaving_the_secret_family_drops_every_secret() {
        let mut record = client(&[]);
        record.token_endpoint_auth_method = AUTH_CLIENT_SECRET_BASIC.into();
        record.secret_digest = Some(vec![1; 32]);
        record.previous_secret_digest = Some(vec![2; 32]);
        record.previous_secret_expires_at = Some(10);
        record.set_authentication(AUTH_CLIENT_SECRET_POST, None);
        assert!(record.secret_digest.is_some(), "basic and post are one family");
        let jwks = serde_json::json!({ "keys": [] });
        record.set_authentication(AUTH_PRIVATE_KEY_JWT, Some(jwks.clone()));
        assert_eq!(
            (record.secret_digest.clone(), record.previous_secret_digest.clone()),
            (None, None)
        );
        assert_eq!(record.jwks, Some(jwks));
        record.set_authentication(AUTH_NONE, None);
        assert_eq!((record.auth_family(), record.jwks.clone()), (Some(AuthFamily::None), None));
        assert_eq!(AuthFamily::of("client_secret_jwt"), None);
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(valid_scope_token("openid"));
        assert!(valid_scope_token("api:read"));
        assert!(!valid_scope_token(""));
        assert!(!valid_scope_token("a b"));
        assert!(!valid_scope_token("quote\"d"));
    }
}
