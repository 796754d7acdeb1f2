//! Dynamic client registration: `POST /oauth2/register` (RFC 7591) and the client's
//! management of its registration at `/oauth2/register/{client_id}` (RFC 7592: `GET`, `PUT`,
//! `DELETE`, with its registration access token as a bearer token). JSON in and out; errors
//! in the RFCs' `{"error", "error_description"}`. While registration is off (the default),
//! these addresses do not exist.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gatehouse_domain::oauth::registration::{ClientMetadata, RegistrationError};

use super::response::no_store_json;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/register", post(register))
        .route("/oauth2/register/{client_id}", axum::routing::get(read).put(replace).delete(delete))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 256)
}

/// The metadata of a JSON body: anything else is `invalid_client_metadata`.
fn metadata(headers: &HeaderMap, body: &Bytes) -> Result<ClientMetadata, RegistrationError> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        return Err(RegistrationError::InvalidClientMetadata("send application/json".into()));
    }
    serde_json::from_slice(body).map_err(|error| {
        RegistrationError::InvalidClientMetadata(format!("the client metadata is invalid: {error}"))
    })
}

/// An RFC 7591 §3.2.2 error answer.
fn refused(error: RegistrationError) -> Response {
    let status = match &error {
        RegistrationError::Disabled => StatusCode::NOT_FOUND,
        RegistrationError::InvalidToken => StatusCode::UNAUTHORIZED,
        RegistrationError::InvalidRedirectUri(_) | RegistrationError::InvalidClientMetadata(_) => {
            StatusCode::BAD_REQUEST
        }
        RegistrationError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        RegistrationError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let internal = match &error {
        RegistrationError::Unavailable(text) | RegistrationError::Internal(text) => {
            Some(text.clone())
        }
        _ => None,
    };
    let body = serde_json::json!({
        "error": error.error_code(),
        "error_description": error.description(),
    });
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
        );
    }
    response.extensions_mut().insert(ErrorForLog { code: error.error_code(), internal });
    response
}

fn answer<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(body) => {
            let mut response = no_store_json(body);
            *response.status_mut() = status;
            response
        }
        Err(error) => refused(RegistrationError::Internal(error.to_string())),
    }
}

async fn register(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.registration.mode() == gatehouse_domain::oauth::registration::RegistrationMode::Off {
        return refused(RegistrationError::Disabled);
    }
    let metadata = match metadata(&headers, &body) {
        Ok(metadata) => metadata,
        Err(error) => return refused(error),
    };
    match state.registration.register(bearer(&headers), metadata, &context).await {
        Ok(registered) => answer(StatusCode::CREATED, &registered),
        Err(error) => refused(error),
    }
}

async fn read(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if state.registration.mode() == gatehouse_domain::oauth::registration::RegistrationMode::Off {
        return refused(RegistrationError::Disabled);
    }
    match state.registration.read(&client_id, bearer(&headers)).await {
        Ok(registered) => answer(StatusCode::OK, &registered),
        Err(error) => refused(error),
    }
}

async fn replace(
    State(state): State<AppState>,
    Client(context): Client,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.registration.mode() == gatehouse_domain::oauth::registration::RegistrationMode::Off {
        return refused(RegistrationError::Disabled);
    }
    let token = bearer(&headers);
    let metadata = match metadata(&headers, &body) {
        Ok(metadata) => metadata,
        Err(error) => return refused(error),
    };
    match state.registration.replace(&client_id, token, metadata, &context).await {
        Ok(registered) => answer(StatusCode::OK, &registered),
        Err(error) => refused(error),
    }
}

async fn delete(
    State(state): State<AppState>,
    Client(context): Client,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if state.registration.mode() == gatehouse_domain::oauth::registration::RegistrationMode::Off {
        return refused(RegistrationError::Disabled);
    }
    match state.registration.delete(&client_id, bearer(&headers), &context).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refused(error),
    }
}
