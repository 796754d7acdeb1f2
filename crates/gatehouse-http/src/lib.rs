//! The HTTP layer: the axum router, our extractors, problem+json errors, OpenAPI and metrics.
//!
//! Invariant: handlers are thin — extract, call one domain service, map the result. No SQL and
//! no security rule lives here; wire types (DTOs) live here and convert at the edge.

mod auth;
mod browser;
mod client;
pub mod documents;
mod dpop;
mod error;
mod extract;
mod headers;
mod locale;
mod metrics;
mod middleware;
mod openapi;
pub mod pages;
#[cfg(test)]
mod proptests;
mod ratelimit;
mod routes;
mod state;
mod summaries;

pub use error::{ApiError, FieldError, Problem};
pub use extract::{ApiJson, ApiQuery, OptionalApiJson};
pub use metrics::Metrics;
pub use ratelimit::RateLimits;
pub use state::{AppServices, AppState, CorsSettings, HttpSettings};

use axum::Router;

/// The whole application router with its middleware; `main` and the tests share it.
pub fn router(state: AppState) -> Router {
    // The first-party and admin API (`/v1`), under its general per-principal / per-IP budget.
    let api = Router::new()
        .merge(routes::auth::routes(&state))
        .merge(routes::email_links::routes(&state))
        .merge(routes::me::routes(&state))
        .merge(routes::mfa::routes(&state))
        .merge(routes::me_mfa::routes(&state))
        .merge(routes::passkeys::routes(&state))
        .merge(routes::organizations::routes())
        .merge(routes::admin_organizations::routes())
        .merge(routes::api_keys::routes())
        .merge(routes::federation::routes())
        .merge(routes::admin::routes())
        .merge(routes::admin_clients::routes())
        .merge(routes::admin_resource_servers::routes())
        .merge(routes::admin_registration_tokens::routes())
        .merge(routes::admin_audit::routes())
        .merge(routes::admin_deliveries::routes())
        .merge(routes::admin_webhooks::routes())
        .merge(routes::admin_identity_providers::routes())
        .merge(routes::admin_overview::routes())
        .merge(routes::admin_sessions::routes())
        .merge(routes::me_data::routes())
        .merge(routes::admin_signing_keys::routes())
        .merge(routes::admin_keys::routes())
        // Sign-in and refresh with a DPoP proof bind the session to its key; after the budget.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), dpop::sign_in_proof))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::api_budget))
        // Under the CORS layer, so a preflight (OPTIONS, which no route handles) reaches it.
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::api_cors));
    let routes = Router::new()
        .merge(routes::operations::routes())
        .merge(api)
        .merge(routes::oauth::routes(&state))
        .merge(routes::well_known::routes())
        .merge(openapi::routes())
        .merge(pages::routes())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed);
    middleware::wrap(routes, state)
}
