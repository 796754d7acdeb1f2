//! `/assets/gatehouse.css`: the embedded stylesheet, with the brand colour substituted at
//! start-up; `/assets/passkeys.js`: the one page script. Pages link both with a content
//! fingerprint (`?v=`), so they may be cached.

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

pub(crate) async fn passkeys_script(State(state): State<AppState>) -> Response {
    let mut response = state.pages.passkeys_script.source.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    response
}
