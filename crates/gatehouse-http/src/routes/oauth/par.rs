//! `POST /oauth2/par`: pushed authorization requests (RFC 9126). The client authenticates as
//! at the token endpoint and sends the authorization request's parameters in the form; the
//! answer is `201 {request_uri, expires_in}`, errors are the token endpoint's JSON ones.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::authorize::AuthorizationRequest;
use gatehouse_domain::oauth::dpop::ProofTarget;

use super::form::OAuthForm;
use super::response::{OAuthErrorResponse, no_store_json};
use crate::dpop;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/par", post(push))
}

async fn push(State(state): State<AppState>, headers: HeaderMap, form: OAuthForm) -> Response {
    let response = match pushed(&state, &headers, &form).await {
        Ok(body) => {
            let mut response = no_store_json(body);
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        Err(error) => error.into_response(),
    };
    dpop::with_nonce(&state, response)
}

async fn pushed(
    state: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<serde_json::Value, OAuthErrorResponse> {
    let credentials = form.client_credentials()?;
    let client =
        state.clients.authenticate_client(&credentials).await.map_err(OAuthErrorResponse::from)?;
    let text = |name: &str| form.get(name).map(str::to_owned);
    // A proof sent with the push binds the code to its key, as `dpop_jkt` does (RFC 9449
    // §10.1); with both, they must name the same key.
    let target = ProofTarget { method: "POST", path: "/oauth2/par", access_token: None };
    let proof_jkt = dpop::proof_key(state, headers, target).await?;
    let dpop_jkt = match (proof_jkt, text("dpop_jkt")) {
        (Some(proof), Some(named)) if proof != named => {
            return Err(OAuthError::InvalidDpopProof(
                "dpop_jkt names another key than the DPoP proof's".into(),
            )
            .into());
        }
        (Some(proof), _) => Some(proof),
        (None, named) => named,
    };
    let request = AuthorizationRequest {
        client_id: text("client_id"),
        redirect_uri: text("redirect_uri"),
        response_type: text("response_type"),
        scope: text("scope"),
        state: text("state"),
        nonce: text("nonce"),
        code_challenge: text("code_challenge"),
        code_challenge_method: text("code_challenge_method"),
        prompt: text("prompt"),
        max_age: text("max_age"),
        login_hint: text("login_hint"),
        ui_locales: text("ui_locales"),
        request: text("request"),
        request_uri: text("request_uri"),
        response_mode: text("response_mode"),
        organization: text("organization"),
        dpop_jkt,
        resource: form.resources.clone(),
        pushed: true,
    };
    let pushed = state.par.push(&client, request).await?;
    serde_json::to_value(pushed).map_err(|error| OAuthError::ServerError(error.to_string()).into())
}
