//! The OAuth 2.1 / OpenID Connect endpoints, one module each, with errors in the RFCs' format
//! (`{"error", "error_description"}`) instead of problem+json.

pub(crate) mod authorize;
pub(crate) mod device_flow;
pub(crate) mod discovery;
pub(crate) mod end_session;
pub(crate) mod form;
pub(crate) mod introspect;
pub(crate) mod limits;
pub(crate) mod par;
pub(crate) mod register;
pub(crate) mod response;
pub(crate) mod token;
pub(crate) mod userinfo;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use crate::middleware::limit;
use crate::ratelimit::Bucket;
use crate::state::AppState;

pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let limited = |bucket: Bucket| from_fn_with_state((state.clone(), bucket), limit);
    let api = Router::new()
        .merge(token::routes().route_layer(from_fn_with_state(state.clone(), limits::token_budget)))
        .merge(par::routes().route_layer(from_fn_with_state(state.clone(), limits::token_budget)))
        .merge(userinfo::routes())
        .merge(register::routes().route_layer(limited(Bucket::SignUp)))
        .merge(introspect::routes().route_layer(limited(Bucket::Introspect)))
        .merge(device_flow::api_routes().route_layer(limited(Bucket::DeviceAuthorization)))
        // Set here, under the CORS middleware, so a preflight (OPTIONS, which no route
        // handles) reaches it instead of the router-wide 405 that runs outside this layer.
        .method_not_allowed_fallback(crate::routes::method_not_allowed)
        .layer(axum::middleware::from_fn(cors));
    // Discovery answers a simple GET (no preflight) and sets its CORS header itself, like
    // JWKS: the hottest routes skip this middleware.
    api.merge(discovery::routes())
        .merge(authorize::routes())
        .merge(device_flow::page_routes())
        .merge(end_session::routes())
}

/// CORS for the endpoints browser clients (SPAs) call cross-origin. None of them uses
/// cookies, so any origin may, without credentials: a preflight is answered here with fixed
/// headers, and every other answer only needs `Access-Control-Allow-Origin: *` (with a
/// wildcard origin there is nothing to `Vary` on). Static headers, unlike a general CORS
/// layer that builds a header map per request: these are the hottest routes.
async fn cors(request: Request, next: Next) -> Response {
    let any = HeaderValue::from_static("*");
    if request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, any),
                (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST")),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                ),
                (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("3600")),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, any);
    response
}
