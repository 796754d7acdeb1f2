//! Our own JSON extractor, so malformed bodies answer in the problem+json format with a stable
//! code instead of axum's plain-text rejections.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` whose rejections are [`ApiError`]s: 415 `unsupported_media_type`, 400
/// `malformed_json`, 422 `validation_failed` (missing or unknown fields, wrong types), 413
/// `payload_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

/// An optional JSON body (`DELETE` with a proof, say): `None` when the request has no body and
/// no content type, else exactly [`ApiJson`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalApiJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers();
        let empty = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
        if empty && !headers.contains_key(axum::http::header::CONTENT_TYPE) {
            return Ok(OptionalApiJson(None));
        }
        let ApiJson(value) = ApiJson::<T>::from_request(request, state).await?;
        Ok(OptionalApiJson(Some(value)))
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonRejection::JsonSyntaxError(error) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", error.body_text())
        }
        JsonRejection::JsonDataError(error) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", error.body_text())
        }
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large.",
            )
        }
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// `Query<T>` whose rejections are 400 `invalid_query` problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", error.body_text()))
            }
            Err(other) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", other.body_text()))
            }
        }
    }
}
