//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009); both need client
//! authentication, and a client only ever affects or learns about its own tokens — except API
//! keys (`gtk_…`), which belong to no client: any confidential client may introspect one.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gatehouse_domain::api_keys::API_KEY;
use gatehouse_domain::oauth::OAuthError;

use super::form::OAuthForm;
use super::response::{OAuthErrorResponse, no_store_json};
use crate::client::Client;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
}

async fn authenticated(
    state: &AppState,
    form: &OAuthForm,
) -> Result<gatehouse_domain::oauth::client::ClientRecord, OAuthErrorResponse> {
    let credentials = form.client_credentials()?;
    state.clients.authenticate_client(&credentials).await.map_err(OAuthErrorResponse::from)
}

pub(crate) async fn introspect(State(state): State<AppState>, form: OAuthForm) -> Response {
    let result = async {
        let client = authenticated(&state, &form).await?;
        // Public clients hold no secret, so anyone could introspect as them.
        if client.is_public() {
            return Err(OAuthErrorResponse::from(OAuthError::InvalidClient));
        }
        let token =
            form.get("token").ok_or(OAuthError::InvalidRequest("token is required".into()))?;
        // API keys belong to no client: any authenticated confidential client may ask.
        if API_KEY.claims(token) {
            return state
                .api_keys
                .introspect(token)
                .await
                .map_err(|error| OAuthErrorResponse::from(OAuthError::from(error)));
        }
        Ok(state.oauth.introspect(&client, token).await?)
    }
    .await;
    match result {
        Ok(answer) => no_store_json(answer),
        Err(error) => error.into_response(),
    }
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Client(context): Client,
    form: OAuthForm,
) -> Response {
    let result = async {
        let client = authenticated(&state, &form).await?;
        let token =
            form.get("token").ok_or(OAuthError::InvalidRequest("token is required".into()))?;
        state.oauth.revoke(&client, token, &context).await?;
        Ok::<_, OAuthErrorResponse>(())
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}
