//! DPoP (RFC 9449) at the HTTP edge: reading the one `DPoP` header of a request and the
//! `Authorization: DPoP` scheme, and the headers DPoP answers carry (`DPoP-Nonce`, the `DPoP`
//! challenge). The checks themselves are the domain's (`oauth::dpop::DpopService`).

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::dpop::{
    DPOP_HEADER, DPOP_NONCE_HEADER, DPOP_TOKEN_TYPE, ProofTarget, signing_algorithms,
};

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
