//! The OpenAPI 3.1 description of the first-party and admin API, served at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::routes::{operations, well_known};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Self-hostable identity server: first-party and admin API."),
    paths(operations::healthz, operations::readyz, operations::metrics, well_known::jwks),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    tags((name = "operations", description = "Health, readiness and metrics"),
         (name = "oauth", description = "OAuth 2.1 / OpenID Connect"))
)]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
