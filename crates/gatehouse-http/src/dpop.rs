//! DPoP (RFC 9449) at the HTTP edge: reading the one `DPoP` header of a request and the
//! `Authorization: DPoP` scheme, the headers DPoP answers carry (`DPoP-Nonce`, the `DPoP`
//! challenge), and the first-party API's side: [`sign_in_proof`] binds the sessions the
//! `/v1/auth` endpoints open or refresh to the proof's key. The checks themselves are the
//! domain's (`oauth::dpop::DpopService`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::dpop::{
    DPOP_HEADER, DPOP_NONCE_HEADER, DPOP_TOKEN_TYPE, ProofTarget, signing_algorithms,
};

use crate::client::VerifiedDpopKey;
use crate::error::ApiError;
use crate::state::AppState;

/// The access token of an `Authorization` header, and whether it came as `DPoP` (else
/// `Bearer`); scheme names are case-insensitive (RFC 9110 §11.1).
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<(&str, bool)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let dpop = if scheme.eq_ignore_ascii_case(DPOP_TOKEN_TYPE) {
        true
    } else if scheme.eq_ignore_ascii_case("Bearer") {
        false
    } else {
        return None;
    };
    let token = token.trim();
    (!token.is_empty() && token.len() <= 4096).then_some((token, dpop))
}

/// The request's proof, checked for `target`: `Ok(None)` without a `DPoP` header, the key's
/// thumbprint with a valid one; more than one header is an invalid proof (RFC 9449 §4.3).
pub(crate) async fn proof_key(
    state: &AppState,
    headers: &HeaderMap,
    target: ProofTarget<'_>,
) -> Result<Option<String>, OAuthError> {
    let mut proofs = headers.get_all(DPOP_HEADER).iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(OAuthError::InvalidDpopProof("send one DPoP header".into()));
    }
    let proof = proof
        .to_str()
        .map_err(|_| OAuthError::InvalidDpopProof("the DPoP header is not a JWT".into()))?;
    state.dpop.verify(proof, target).await.map(Some)
}

/// Adds the current server nonce (`DPoP-Nonce`) to an answer, when nonces are required: to
/// every answer of an endpoint that checks proofs, so a client always holds a fresh one.
pub(crate) fn with_nonce(state: &AppState, mut response: Response) -> Response {
    if let Some(nonce) = state.dpop.current_nonce()
        && let Ok(value) = HeaderValue::from_str(&nonce)
    {
        response.headers_mut().insert(DPOP_NONCE_HEADER, value);
    }
    response
}

/// The `DPoP` challenge of a resource's 401 (RFC 9449 §7.1): the algorithms, and the error.
pub(crate) fn challenge(error: Option<&str>) -> HeaderValue {
    let algorithms = signing_algorithms().join(" ");
    let text = match error {
        Some(error) => format!("DPoP error=\"{error}\", algs=\"{algorithms}\""),
        None => format!("DPoP algs=\"{algorithms}\""),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
}

/// A DPoP failure in the first-party API's problem+json: `invalid_dpop_proof` or
/// `use_dpop_nonce`, 400 where a session is opened and 401 (with the `DPoP` challenge) at a
/// resource.
pub(crate) fn api_error(error: OAuthError, at_resource: bool) -> ApiError {
    let status = if at_resource { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    let code = match error {
        OAuthError::UseDpopNonce => "use_dpop_nonce",
        OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
        // The proof store could not be reached: the request can be retried.
        OAuthError::TemporarilyUnavailable(reason) => {
            return ApiError::from(gatehouse_domain::DomainError::Store(
                gatehouse_domain::StoreError::Unavailable(reason),
            ));
        }
        other => return ApiError::internal(other.to_string()),
    };
    let api_error = ApiError::new(status, code, error_description(code));
    if at_resource { api_error.with_challenge(challenge(Some(code))) } else { api_error }
}

fn error_description(code: &str) -> &'static str {
    if code == "use_dpop_nonce" {
        "The DPoP proof must carry the nonce given in the DPoP-Nonce header."
    } else {
        "The DPoP proof is missing, invalid, replayed, or not for this request."
    }
}

/// A 401 for a token presented against its binding (a DPoP-bound token as `Bearer`, or an
/// unbound one as `DPoP`), with the `DPoP` challenge.
pub(crate) fn wrong_binding() -> ApiError {
    ApiError::invalid_token().with_challenge(challenge(Some("invalid_token")))
}

/// On the `/v1/auth` endpoints that open or refresh a session: a `DPoP` header (on a request
/// that does not itself present a DPoP-bound token) is checked for this request and its key
/// handed to the domain (`RequestContext::dpop_jkt`), which binds the session to it. Every
/// answer then carries the current server nonce, when nonces are required.
pub(crate) async fn sign_in_proof(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let opens_session = request.method() == Method::POST
        && request.uri().path().starts_with("/v1/auth/")
        && request.headers().contains_key(DPOP_HEADER)
        && !presented_token(request.headers()).is_some_and(|(_, with_dpop)| with_dpop);
    if !opens_session {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let target = ProofTarget { method: "POST", path: &path, access_token: None };
    match proof_key(&state, &parts.headers, target).await {
        Ok(Some(jkt)) => {
            parts.extensions.insert(VerifiedDpopKey(jkt));
        }
        Ok(None) => {}
        Err(error) => return with_nonce(&state, api_error(error, false).into_response()),
    }
    with_nonce(&state, next.run(Request::from_parts(parts, body)).await)
}
