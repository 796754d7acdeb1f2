//! An MCP-style resource server (the MCP authorization profile): a JSON-RPC endpoint at
//! `/mcp` that only answers access tokens issued by Gatehouse **for this resource** (RFC
//! 8707: `aud` is the resource's identifier) carrying the `tools:call` scope, and that tells a
//! client meeting its 401 where to get one (RFC 9728: `WWW-Authenticate: Bearer
//! resource_metadata="…"` and the metadata document naming Gatehouse as its authorization
//! server). A client then discovers Gatehouse, registers itself (dynamic client registration),
//! runs the code flow with PKCE and `resource=<this resource>`, and calls the tools — with a
//! bearer token, or a DPoP-bound one and a proof per call. See docs/mcp.md.
//!
//! ```sh
//! GATEHOUSE_OAUTH_DYNAMIC_REGISTRATION=open gatehouse serve &
//! gatehouse resource-server create --identifier http://127.0.0.1:3001/mcp --name Tools --scope tools:call
//! cargo run -p gatehouse-verify --features axum --example mcp_resource_server
//! curl -i -X POST http://127.0.0.1:3001/mcp       # 401, and where to look
//! ```
//!
//! Settings (environment): `ISSUER_URL` (default `http://localhost:8080`), `RESOURCE_URL`
//! (default `http://127.0.0.1:3001/mcp`: the identifier registered at Gatehouse, and the
//! audience required), `LISTEN_ADDR` (default: the resource URL's host and port).

use axum::routing::post;
use axum::{Json, Router};
use gatehouse_verify::{Claims, Forbidden, ProtectedResource, Verifier, VerifyLayer};
use serde_json::{Value, json};

/// A minimal MCP server's two methods: `tools/list` and `tools/call` of an `echo` tool.
async fn mcp(claims: Claims, Json(request): Json<Value>) -> Result<Json<Value>, Forbidden> {
    claims.require_scope("tools:call")?;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let result = match request.get("method").and_then(Value::as_str) {
        Some("tools/list") => json!({
            "tools": [{
                "name": "echo",
                "description": "Answers its text, and who asked",
                "inputSchema": { "type": "object", "properties": { "text": { "type": "string" } } },
            }],
        }),
        Some("tools/call") => {
            let text = request["params"]["arguments"]["text"].as_str().unwrap_or_default();
            json!({ "content": [{ "type": "text", "text": format!("{text} (for {})", claims.sub) }] })
        }
        _ => {
            return Ok(Json(json!({
                "jsonrpc": "2.0", "id": id,
                "error": { "code": -32601, "message": "method not found" },
            })));
        }
    };
    Ok(Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let setting = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let issuer = setting("ISSUER_URL").unwrap_or_else(|| "http://localhost:8080".to_owned());
    let resource =
        setting("RESOURCE_URL").unwrap_or_else(|| "http://127.0.0.1:3001/mcp".to_owned());
    let parsed = url::Url::parse(&resource)?;
    let listen = setting("LISTEN_ADDR").unwrap_or_else(|| {
        format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port_or_known_default().unwrap_or(3001)
        )
    });
    // Only tokens for this resource: Gatehouse's `aud` for `resource=<RESOURCE_URL>`.
    let verifier = Verifier::builder(&issuer).audience(&resource).build()?;
    verifier.refresh_keys().await?;
    let metadata = ProtectedResource::new(&resource, &verifier)?
        .scopes(["tools:call"])
        .name("Example MCP tools");
    let app = Router::new()
        .route(parsed.path(), post(mcp))
        // DPoP-bound tokens too, each call with a proof of the token's key (RFC 9449).
        .layer(
            VerifyLayer::new(verifier)
                .with_resource_metadata(&metadata)
                .with_dpop(parsed.origin().ascii_serialization()),
        )
        .merge(metadata.router());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("MCP resource {resource} on http://{}, trusting {issuer}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
