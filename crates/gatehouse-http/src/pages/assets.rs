//! `/assets/gatehouse.css`: the embedded stylesheet, with the brand colour substituted at
//! start-up. Pages link it with a content fingerprint (`?v=`), so it may be cached.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub(crate) async fn stylesheet(State(state): State<AppState>) -> Response {
    let mut response = state.pages.stylesheet.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}
