//! Route groups, one module per concern, and the answers for unknown routes.

pub(crate) mod admin;
pub(crate) mod admin_audit;
pub(crate) mod admin_clients;
pub(crate) mod admin_deliveries;
pub(crate) mod admin_identity_providers;
pub(crate) mod admin_keys;
pub(crate) mod admin_organizations;
pub(crate) mod admin_overview;
pub(crate) mod admin_registration_tokens;
pub(crate) mod admin_resource_servers;
pub(crate) mod admin_sessions;
pub(crate) mod admin_signing_keys;
pub(crate) mod admin_webhooks;
pub(crate) mod api_keys;
pub(crate) mod auth;
pub(crate) mod dto;
pub(crate) mod email_links;
pub(crate) mod federation;
pub(crate) mod me;
pub(crate) mod me_data;
pub(crate) mod me_mfa;
pub(crate) mod mfa;
pub(crate) mod oauth;
pub(crate) mod operations;
pub(crate) mod organizations;
pub(crate) mod passkeys;
pub(crate) mod well_known;

use axum::http::StatusCode;

use crate::error::ApiError;

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This method is not allowed on this address.",
    )
}
