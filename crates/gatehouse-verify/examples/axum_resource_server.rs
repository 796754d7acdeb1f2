//! A resource server that accepts Gatehouse access tokens (and API keys, when given client
//! credentials for introspection).
//!
//! ```sh
//! gatehouse serve &                 # 127.0.0.1:8080, issuer http://localhost:8080
//! cargo run -p gatehouse-verify --example axum_resource_server
//! TOKEN=$(curl -s -X POST http://localhost:8080/v1/auth/sign-up -H 'content-type: application/json' \
//!   -d '{"email":"ada@example.com","password":"Quasar-trail-mix-81!"}' | jq -r .tokens.access_token)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me
//! ```
//!
//! Settings (environment): `ISSUER_URL` (default `http://localhost:8080`, what
//! `gatehouse serve` calls itself in development),
//! `AUDIENCE` (default: the issuer, as Gatehouse's first-party tokens carry it),
//! `INTROSPECTION_CLIENT_ID` and `INTROSPECTION_CLIENT_SECRET` (optional: accept API keys),
//! `LISTEN_ADDR` (default `127.0.0.1:3000`). (Not `GATEHOUSE_*` names: `gatehouse serve`
//! refuses to start beside variables of that prefix it does not know.)

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_verify::{Claims, Forbidden, VerifiedToken, Verifier, VerifyLayer};

/// Anyone with a valid token: who they are, and how the token was checked.
async fn me(token: VerifiedToken) -> Response {
    axum::Json(serde_json::json!({
        "sub": token.sub,
        "kind": format!("{:?}", token.kind),
        "scope": token.scope,
        "organization": token.org_slug,
    }))
    .into_response()
}

/// Needs the `orders:read` scope (an OAuth client's token or an API key made with it): 403
/// `insufficient_scope` otherwise.
async fn orders(claims: Claims) -> Result<String, Forbidden> {
    claims.require_scope("orders:read")?;
    Ok(format!("the orders {} may read\n", claims.sub))
}

/// Needs a token acting in this organization whose role grants `members:read`.
async fn members(claims: Claims, Path(organization_id): Path<String>) -> Result<String, Forbidden> {
    claims.require_permission(&organization_id, "members:read")?;
    Ok(format!("the members of {organization_id}\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setting = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let issuer = setting("ISSUER_URL").unwrap_or_else(|| "http://localhost:8080".to_owned());
    let audience = setting("AUDIENCE").unwrap_or_else(|| issuer.clone());
    let mut builder = Verifier::builder(&issuer).audience(audience);
    if let (Some(id), Some(secret)) =
        (setting("INTROSPECTION_CLIENT_ID"), setting("INTROSPECTION_CLIENT_SECRET"))
    {
        builder = builder.introspection(id, secret);
    }
    let verifier = builder.build()?;
    // Fail now, not at the first request, if the issuer cannot be reached.
    verifier.refresh_keys().await?;

    let protected = Router::new()
        .route("/me", get(me))
        .route("/orders", get(orders))
        .route("/organizations/{organization_id}/members", get(members))
        .layer(VerifyLayer::new(verifier));
    let app = Router::new().route("/", get(|| async { "public\n" })).merge(protected);

    let addr = setting("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("resource server on http://{}, trusting {issuer}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
