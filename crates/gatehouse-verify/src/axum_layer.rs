//! axum integration (feature `axum`): the [`VerifyLayer`] tower layer, the [`VerifiedToken`]
//! and [`Claims`] extractors, and the answers: 401 with `WWW-Authenticate: Bearer` (RFC 6750)
//! and a problem+json body (RFC 9457) with a `code`, 403 `insufficient_scope`, 503 when the
//! issuer cannot be reached.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::claims::Claims;
use crate::error::{Forbidden, VerifyError};
use crate::verifier::{VerifiedToken, Verifier};

/// The bearer token of an `Authorization` header (RFC 6750 section 2.1; the scheme is
/// case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let value = headers.get(AUTHORIZATION).ok_or(VerifyError::MissingToken)?;
    let value = value.to_str().map_err(|_| VerifyError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(VerifyError::Malformed);
    }
    Ok(token)
}

/// The token of `Authorization: DPoP <token>` (the scheme is case-insensitive).
fn dpop_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("dpop") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The request's one `DPoP` header.
fn dpop_proof(headers: &HeaderMap) -> Option<&str> {
    let mut proofs = headers.get_all("dpop").iter();
    let proof = proofs.next()?;
    if proofs.next().is_some() {
        return None;
    }
    proof.to_str().ok()
}

/// Verifies the bearer token of every request before the inner service sees it: a request
/// without an acceptable token is answered 401 (503 when the issuer cannot be reached); an
/// accepted one carries its [`VerifiedToken`] in its extensions, where the extractors find it.
///
/// ```no_run
/// # fn example(verifier: gatehouse_verify::Verifier) {
/// use axum::{Router, routing::get};
/// use gatehouse_verify::{Claims, VerifyLayer};
///
/// async fn me(claims: Claims) -> String { claims.sub }
/// let app: Router = Router::new().route("/me", get(me)).layer(VerifyLayer::new(verifier));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
    /// `resource_metadata="…"` for the 401 challenges (RFC 9728 section 5.1).
    resource_metadata: Option<HeaderValue>,
    /// Accept `Authorization: DPoP` (RFC 9449): the public origin proofs' `htu` name.
    dpop_origin: Option<String>,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        VerifyLayer { verifier, resource_metadata: None, dpop_origin: None }
    }

    /// Also accept DPoP-bound tokens as `Authorization: DPoP <token>` with a `DPoP` proof of
    /// their key for each request ([`Verifier::verify_dpop`]). `public_origin` is this server's
    /// origin as clients call it (`https://tools.example.com`; behind a proxy, the public one):
    /// a proof's `htu` must be it and the request's path.
    pub fn with_dpop(mut self, public_origin: impl Into<String>) -> Self {
        self.dpop_origin = Some(public_origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// The 401 answers name the resource's metadata (`WWW-Authenticate: Bearer
    /// resource_metadata="<url>"`, RFC 9728 section 5.1), so a client that meets one finds the
    /// authorization server; serve the document with [`crate::ProtectedResource::router`].
    pub fn with_resource_metadata(mut self, resource: &crate::ProtectedResource) -> Self {
        self.resource_metadata = HeaderValue::from_str(&resource.metadata_url()).ok();
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> VerifyService<S> {
        VerifyService {
            verifier: self.verifier.clone(),
            resource_metadata: self.resource_metadata.clone(),
            dpop_origin: self.dpop_origin.clone(),
            inner,
        }
    }
}

/// The service [`VerifyLayer`] wraps around its inner service.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    verifier: Verifier,
    resource_metadata: Option<HeaderValue>,
    dpop_origin: Option<String>,
    inner: S,
}

impl<S, B> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let resource_metadata = self.resource_metadata.clone();
        let dpop_origin = self.dpop_origin.clone();
        Box::pin(async move {
            let verified = match (dpop_token(request.headers()), &dpop_origin) {
                (Some(token), Some(origin)) => {
                    let url = format!("{origin}{}", request.uri().path());
                    match dpop_proof(request.headers()) {
                        Some(proof) => {
                            let method = request.method().as_str();
                            verifier.verify_dpop(token, proof, method, &url).await
                        }
                        None => Err(VerifyError::InvalidDpopProof("send one DPoP proof")),
                    }
                }
                _ => match bearer_token(request.headers()) {
                    Ok(token) => verifier.verify_token(token).await,
                    Err(error) => Err(error),
                },
            };
            match verified {
                Ok(verified) => {
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(error) => {
                    let mut response = error.into_response();
                    if let Some(url) = &resource_metadata {
                        name_resource_metadata(&mut response, url);
                    }
                    Ok(response)
                }
            }
        })
    }
}

/// Adds `resource_metadata="<url>"` to a 401's `Bearer` challenge.
fn name_resource_metadata(response: &mut Response, url: &HeaderValue) {
    let Some(challenge) = response.headers().get(WWW_AUTHENTICATE) else { return };
    let (Ok(challenge), Ok(url)) = (challenge.to_str(), url.to_str()) else { return };
    let extended = if challenge == "Bearer" {
        format!("Bearer resource_metadata=\"{url}\"")
    } else {
        format!("{challenge}, resource_metadata=\"{url}\"")
    };
    if let Ok(value) = HeaderValue::from_str(&extended) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
}

/// The extractor: the token [`VerifyLayer`] verified, or, without the layer, the bearer
/// token verified here by the [`Verifier`] found in the request's extensions (add it with
/// `axum::Extension(verifier)`).
impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        if let Some(verified) = parts.extensions.get::<VerifiedToken>() {
            return Ok(verified.clone());
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            tracing::error!(
                "VerifiedToken extracted on a route with neither VerifyLayer nor Extension(Verifier)"
            );
            return Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "token verification is not configured".to_owned(),
            ));
        };
        let token = bearer_token(&parts.headers).map_err(IntoResponse::into_response)?;
        let verified = verifier.verify_token(token).await.map_err(IntoResponse::into_response)?;
        parts.extensions.insert(verified.clone());
        Ok(verified)
    }
}

/// The claims of the verified token (see [`VerifiedToken`]'s extractor).
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        VerifiedToken::from_request_parts(parts, state).await.map(|verified| verified.claims)
    }
}

/// 401 with `WWW-Authenticate: Bearer` — with `error="invalid_token"` when a token was
/// presented, bare when none was (RFC 6750 section 3.1) — or 503 when the issuer could not be
/// reached; a problem+json body either way.
impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        if !self.is_token_problem() {
            tracing::warn!("token not verified: {self}");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                self.code(),
                "the token cannot be verified right now".to_owned(),
            );
        }
        let challenge = match self {
            VerifyError::MissingToken => HeaderValue::from_static("Bearer"),
            VerifyError::InvalidDpopProof(_) => HeaderValue::from_static(
                "DPoP error=\"invalid_dpop_proof\", algs=\"ES256 ES384 EdDSA RS256 PS256\"",
            ),
            _ => HeaderValue::from_static("Bearer error=\"invalid_token\""),
        };
        let mut response = problem(StatusCode::UNAUTHORIZED, self.code(), self.to_string());
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

/// 403 with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` for a missing
/// scope, plain 403 `permission_denied` otherwise.
impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        let mut response = problem(StatusCode::FORBIDDEN, self.code(), self.to_string());
        if let Forbidden::InsufficientScope(scope) = &self {
            // Scope tokens are printable ASCII without `"` or `\` (RFC 6749 section 3.3);
            // anything else is left out of the header rather than escaped.
            let printable = scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            let challenge = if printable {
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
            } else {
                "Bearer error=\"insufficient_scope\"".to_owned()
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

/// An RFC 9457 body in Gatehouse's shape: `type`, `title`, `status`, `code`, `detail`.
fn problem(status: StatusCode, code: &str, detail: String) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:gatehouse:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_tokens_are_read_as_rfc_6750_writes_them() {
        let check = |value: Option<&str>, expected: Result<&str, VerifyError>| {
            assert_eq!(bearer_token(&headers(value)), expected, "{value:?}");
        };
        check(Some("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        check(Some("bearer gtk_1"), Ok("gtk_1"));
        check(None, Err(VerifyError::MissingToken));
        check(Some("Basic dXNlcjpwdw=="), Err(VerifyError::MissingToken));
        check(Some("Bearer"), Err(VerifyError::Malformed));
        check(Some("Bearer "), Err(VerifyError::Malformed));
        check(Some("Bearer a b"), Err(VerifyError::Malformed));
    }
}
