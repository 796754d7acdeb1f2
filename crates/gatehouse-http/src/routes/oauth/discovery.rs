//! Discovery: OpenID Connect Discovery 1.0 and RFC 8414 metadata, advertising only what is
//! implemented.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use crate::documents::document_response;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

pub(crate) async fn metadata(State(state): State<AppState>) -> Response {
    // Rebuilt only when the key set changes (the advertised algorithms follow the keys).
    let bytes = match state.keys.jwks().await {
        Ok(jwks) => state.documents.discovery.get_or_build(&jwks, |jwks| document(&state, jwks)),
        Err(error) => {
            tracing::error!(%error, "signing keys unavailable for discovery");
            axum::body::Bytes::from(
                serde_json::to_vec(&document(&state, &json!({ "keys": [] }))).unwrap_or_default(),
            )
        }
    };
    document_response(bytes)
}

fn document(state: &AppState, jwks: &serde_json::Value) -> serde_json::Value {
    let issuer = state.oauth.issuer().trim_end_matches('/').to_owned();
    let endpoint = |path: &str| format!("{issuer}{path}");
    // The algorithms of the published keys: ID tokens are signed by the active one.
    let mut algorithms: Vec<String> = jwks["keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|key| key["alg"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    algorithms.sort_unstable();
    algorithms.dedup();
    if algorithms.is_empty() {
        algorithms.push("RS256".to_owned());
    }
    let mut document = json!({
        "issuer": state.oauth.issuer(),
        "authorization_endpoint": endpoint("/oauth2/authorize"),
        "token_endpoint": endpoint("/oauth2/token"),
        "userinfo_endpoint": endpoint("/oauth2/userinfo"),
        "jwks_uri": endpoint("/.well-known/jwks.json"),
        "introspection_endpoint": endpoint("/oauth2/introspect"),
        "revocation_endpoint": endpoint("/oauth2/revoke"),
        "device_authorization_endpoint": endpoint("/oauth2/device_authorization"),
        "end_session_endpoint": endpoint("/oauth2/end_session"),
        // OpenID Connect Back-Channel Logout 1.0; `sid` is always in the logout token.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "pushed_authorization_request_endpoint": endpoint("/oauth2/par"),
        "require_pushed_authorization_requests": state.par.required(),
        "scopes_supported": ["openid", "profile", "email", "offline_access", "organization"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        // DPoP (RFC 9449): proofs at the token endpoint bind tokens; userinfo checks them.
        "dpop_signing_alg_values_supported": gatehouse_domain::oauth::dpop::signing_algorithms(),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "at_hash",
            "name", "given_name", "family_name", "preferred_username", "picture", "updated_at", "email", "email_verified",
            "org_id", "org_slug", "org_role", "org_permissions"],
        // `acr_values_supported` is not advertised: `acr_values` is not honoured (a request
        // for `aal2` does not force a second factor); the ID token's `acr` states what the
        // sign-in achieved (`aal2` only with a second factor), for the client to check.
        "claims_parameter_supported": false,
        // Signed request objects by value (JAR, RFC 9101), verified with the client's keys.
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported":
            gatehouse_domain::oauth::request_object::REQUEST_OBJECT_ALGORITHMS,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["en", "fr"],
    });
    // Dynamic client registration is advertised only while it is on (`open` or `token`).
    if state.registration.mode() != gatehouse_domain::oauth::registration::RegistrationMode::Off
        && let Some(members) = document.as_object_mut()
    {
        members.insert("registration_endpoint".into(), json!(endpoint("/oauth2/register")));
    }
    // OAuth Client ID Metadata Documents, only while they are on.
    if state.settings.client_id_metadata_documents
        && let Some(members) = document.as_object_mut()
    {
        members.insert("client_id_metadata_document_supported".into(), json!(true));
    }
    document
}
