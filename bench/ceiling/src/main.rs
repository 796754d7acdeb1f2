//! HTTP ceiling for the benchmark harness: one GET answered with fixed bytes (the size of a small
//! JSON answer), nothing else. Usage: `gatehouse-bench-ceiling [ADDR]` (default 127.0.0.1:0);
//! prints `listening on http://ADDR` once it accepts connections.

use axum::{Router, http::header, routing::get};

const BODY: &[u8] = br#"{"status":"ok"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let app = Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
