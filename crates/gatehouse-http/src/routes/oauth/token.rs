//! `POST /oauth2/token`: client authentication, then one grant per `grant_type`.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::client::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
};
use gatehouse_domain::oauth::dpop::ProofTarget;
use gatehouse_domain::oauth::exchange::ExchangeRequest;
use gatehouse_domain::oauth::grants::TokenTarget;

use super::form::OAuthForm;
use super::response::{OAuthErrorResponse, no_store_json};
use crate::client::Client;
use crate::dpop;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/token", post(token))
}

pub(crate) async fn token(
    State(state): State<AppState>,
    Client(context): Client,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    let response = match exchange(&state, &context, &headers, &form).await {
        Ok(body) => no_store_json(body),
        Err(error) => error.into_response(),
    };
    dpop::with_nonce(&state, response)
}

async fn exchange(
    state: &AppState,
    context: &gatehouse_domain::principal::RequestContext,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<serde_json::Value, OAuthErrorResponse> {
    let credentials = form.client_credentials()?;
    let client =
        state.clients.authenticate_client(&credentials).await.map_err(OAuthErrorResponse::from)?;
    // A DPoP proof binds what this request issues to the proof's key (RFC 9449 §5).
    let target = ProofTarget { method: "POST", path: "/oauth2/token", access_token: None };
    let dpop_jkt = dpop::proof_key(state, headers, target).await?;
    let dpop_jkt = dpop_jkt.as_deref();
    client.check_dpop(dpop_jkt)?;
    // One resource per token request (RFC 8707 §2.2): each access token has one audience.
    let resource = match form.resources.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        _ => {
            return Err(
                OAuthError::InvalidTarget("name one resource per token request".into()).into()
            );
        }
    };
    let target = TokenTarget { dpop_jkt, resource };
    let grant_type = form
        .get("grant_type")
        .ok_or(OAuthError::InvalidRequest("grant_type is required".into()))?;
    let response = match grant_type {
        GRANT_AUTHORIZATION_CODE => {
            let code =
                form.get("code").ok_or(OAuthError::InvalidRequest("code is required".into()))?;
            state
                .oauth
                .exchange_code(
                    &client,
                    code,
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    target,
                    context,
                )
                .await?
        }
        GRANT_REFRESH_TOKEN => {
            let refresh_token = form
                .get("refresh_token")
                .ok_or(OAuthError::InvalidRequest("refresh_token is required".into()))?;
            state.oauth.refresh(&client, refresh_token, form.get("scope"), target, context).await?
        }
        GRANT_CLIENT_CREDENTIALS => {
            state.oauth.client_credentials(&client, form.get("scope"), target).await?
        }
        GRANT_DEVICE_CODE => {
            let device_code = form
                .get("device_code")
                .ok_or(OAuthError::InvalidRequest("device_code is required".into()))?;
            state.device_flow.exchange_device_code(&client, device_code, dpop_jkt, context).await?
        }
        GRANT_TOKEN_EXCHANGE => {
            let required = |name: &str| {
                form.get(name)
                    .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required")))
            };
            let request = ExchangeRequest {
                subject_token: required("subject_token")?,
                subject_token_type: required("subject_token_type")?,
                actor_token: form.get("actor_token"),
                actor_token_type: form.get("actor_token_type"),
                // RFC 8693 §2.1: `resource` (a URI) or `audience` (a name): both are
                // resource identifiers here.
                resource: resource.or(form.get("audience")),
                scope: form.get("scope"),
                requested_token_type: form.get("requested_token_type"),
                dpop_jkt,
            };
            let exchanged = state.token_exchange.exchange(&client, request, context).await?;
            return serde_json::to_value(exchanged)
                .map_err(|error| OAuthError::ServerError(error.to_string()).into());
        }
        _ => return Err(OAuthError::UnsupportedGrantType.into()),
    };
    serde_json::to_value(response)
        .map_err(|error| OAuthError::ServerError(error.to_string()).into())
}
