//! `ApiJson`: every way a JSON body can be wrong answers 4xx problem+json with a stable code,
//! and the handler never runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use gatehouse_http::ApiJson;
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SignUp {
    email: String,
    age: u32,
}

fn app(calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/sign-up",
            post(move |ApiJson(_body): ApiJson<SignUp>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    StatusCode::CREATED
                }
            }),
        )
        .layer(DefaultBodyLimit::max(1024))
}

async fn send(
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, serde_json::Value, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut request = Request::post("/sign-up");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = app(calls.clone()).oneshot(request.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value == "application/problem+json");
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    if status.is_client_error() {
        assert!(is_problem, "errors are problem+json");
    }
    (status, body, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn bad_bodies_get_stable_codes_and_never_reach_the_handler() {
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            None,
            r#"{"email":"a@b.c","age":3}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("text/plain"),
            r#"{"email":"a@b.c","age":3}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (json, r#"{"email":"a@b.c","#.into(), StatusCode::BAD_REQUEST, "malformed_json"),
        (json, "".into(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            json,
            r#"{"email":"a@b.c"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            r#"{"email":"a@b.c","age":3,"admin":true}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            r#"{"email":"a@b.c","age":-1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            format!(r#"{{"email":"{}","age":3}}"#, "a".repeat(4096)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let (answered, problem, calls) = send(content_type, body.clone()).await;
        assert_eq!(
            (answered, problem["code"].as_str().unwrap()),
            (status, code),
            "{content_type:?} {body:.60}"
        );
        assert_eq!(calls, 0, "the handler must not run for {body:.60}");
    }
    let (status, _, calls) = send(json, r#"{"email":"a@b.c","age":3}"#).await;
    assert_eq!((status, calls), (StatusCode::CREATED, 1));
}
