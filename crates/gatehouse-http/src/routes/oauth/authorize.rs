//! `/oauth2/authorize`: placeholder until the hosted pages land.
use crate::state::AppState;
use axum::Router;
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
