//! Request objects (JAR, RFC 9101): an authorization request sent as a JWT the client signed
//! with one of its registered keys (`jwks`, the keys of `private_key_jwt`), by value in the
//! `request` parameter — of `/oauth2/authorize` or of a pushed request (`/oauth2/par`). Only
//! the object's parameters count (RFC 9101 §5): whatever travels beside it is ignored, except
//! `client_id` (and `response_type`), which must agree with it.
//!
//! A request object must name the client as `iss` (and `client_id`, when present), this
//! server's issuer as `aud`, and expire within [`MAX_REQUEST_OBJECT_LIFETIME_SECONDS`]; its
//! `typ`, when present, is `oauth-authz-req+jwt` (or `jwt`). It is verified with the client's
//! own keys only — never an unsigned (`alg: none`) or MAC'd one. A request object by
//! reference (`request_uri` pointing at a URL) is not fetched.

use gatehouse_crypto::jsonwebtoken::{self, Validation};
use serde_json::{Map, Value};

use super::OAuthError;
use super::authorize::AuthorizationRequest;
use super::client::ClientRecord;

/// The `typ` of a request object (RFC 9101 §4).
pub const REQUEST_OBJECT_TYPE: &str = "oauth-authz-req+jwt";
/// The algorithms a request object may be signed with: those of the client keys Gatehouse
/// verifies (`request_object_signing_alg_values_supported`).
pub const REQUEST_OBJECT_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];
/// Longest life a request object may claim.
pub const MAX_REQUEST_OBJECT_LIFETIME_SECONDS: i64 = 3600;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 30;
/// Longest request object accepted.
const MAX_REQUEST_OBJECT_LENGTH: usize = 16 * 1024;

fn invalid(reason: &str) -> OAuthError {
    OAuthError::InvalidRequestObject(reason.to_owned())
}

/// Opens `object`, a request object of `client` received with the `outer` parameters, and
/// answers the authorization request it carries (its `client_id` set, no `request`).
pub fn open_request_object(
    client: &ClientRecord,
    object: &str,
    outer: &AuthorizationRequest,
    issuer: &str,
    now: i64,
) -> Result<AuthorizationRequest, OAuthError> {
    if object.len() > MAX_REQUEST_OBJECT_LENGTH {
        return Err(invalid("the request object is too long"));
    }
    let jwks = client.jwks.as_ref().ok_or_else(|| {
        invalid("this client has no registered keys to sign request objects with")
    })?;
    let keys = gatehouse_crypto::PublicKeySet::from_jwks(jwks)
        .map_err(|_| invalid("this client's registered keys cannot be used"))?;
    let header = jsonwebtoken::decode_header(object)
        .map_err(|_| invalid("the request object is not a signed JWT"))?;
    if let Some(typ) = header.typ.as_deref() {
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(REQUEST_OBJECT_TYPE) && !typ.eq_ignore_ascii_case("jwt") {
            return Err(invalid("the request object's typ is not oauth-authz-req+jwt"));
        }
    }
    let trimmed = issuer.trim_end_matches('/');
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&client.client_id]);
    validation.set_audience(&[issuer, trimmed]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS as u64;
    let claims: Map<String, Value> = keys.verify(object, None, &validation).map_err(|error| {
        invalid(&format!("the request object does not verify with this client's keys: {error}"))
    })?;
    // jsonwebtoken checked `exp` against the system clock; ours has the last word.
    let expires_at = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| invalid("exp"))?;
    if expires_at + LEEWAY_SECONDS < now || expires_at > now + MAX_REQUEST_OBJECT_LIFETIME_SECONDS {
        return Err(invalid("the request object is expired or lives too long"));
    }
    let text = |name: &str| -> Result<Option<String>, OAuthError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(invalid(&format!("{name} must be a string"))),
        }
    };
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(invalid("a request object cannot hold another request"));
    }
    if text("client_id")?.is_some_and(|id| id != client.client_id)
        || outer.client_id.as_deref().is_some_and(|id| id != client.client_id)
    {
        return Err(invalid("client_id does not match the request object's client"));
    }
    let response_type = text("response_type")?;
    if outer.response_type.is_some() && outer.response_type != response_type {
        return Err(invalid("response_type differs from the request object's"));
    }
    // OIDC lets max_age be a number in a request object.
    let max_age = match claims.get("max_age") {
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => text("max_age")?,
    };
    // `resource` (RFC 8707): one identifier, or several as an array.
    let resource = match claims.get("resource") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .map(|value| value.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| invalid("resource must be a string or an array of strings"))?,
        Some(_) => return Err(invalid("resource must be a string or an array of strings")),
    };
    Ok(AuthorizationRequest {
        client_id: Some(client.client_id.clone()),
        redirect_uri: text("redirect_uri")?,
        response_type,
        scope: text("scope")?,
        state: text("state")?,
        nonce: text("nonce")?,
        code_challenge: text("code_challenge")?,
        code_challenge_method: text("code_challenge_method")?,
        prompt: text("prompt")?,
        max_age,
        login_hint: text("login_hint")?,
        ui_locales: text("ui_locales")?,
        request: None,
        request_uri: None,
        response_mode: text("response_mode")?,
        organization: text("organization")?,
        dpop_jkt: text("dpop_jkt")?,
        resource,
        pushed: outer.pushed,
    })
}
