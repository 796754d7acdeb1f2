//! A local stand-in for a Twilio-compatible SMS API: `POST
//! /2010-04-01/Accounts/{sid}/Messages.json` with a form body (`To`, `From`, `Body`) and HTTP
//! Basic auth, answering like Twilio (201 and a message resource; 401 for bad credentials).
//! It keeps every message it accepted, so tests read the codes the server sent.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;

pub const ACCOUNT_SID: &str = "ACtest0000000000000000000000000000";
pub const AUTH_TOKEN: &str = "test-auth-token";
pub const FROM: &str = "+15005550006";

#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub from: String,
    pub body: String,
}

impl Sms {
    /// The first run of six digits in the body.
    pub fn code(&self) -> Option<String> {
        self.body
            .split(|character: char| !character.is_ascii_digit())
            .find(|run| run.len() == 6)
            .map(str::to_owned)
    }
}

#[derive(Clone, Default)]
struct Shared {
    messages: Arc<Mutex<Vec<Sms>>>,
}

pub struct SmsGateway {
    pub base_url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

async fn create_message(
    State(shared): State<Shared>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let authorised = headers.get("authorization").and_then(|value| value.to_str().ok())
        == Some(expected.as_str());
    if !authorised || sid != ACCOUNT_SID {
        let error = serde_json::json!({ "code": 20003, "message": "Authenticate", "status": 401 });
        return (StatusCode::UNAUTHORIZED, Json(error));
    }
    let (Some(to), Some(from), Some(body)) = (form.get("To"), form.get("From"), form.get("Body"))
    else {
        let error = serde_json::json!({ "code": 21604, "message": "A 'To' phone number is required.", "status": 400 });
        return (StatusCode::BAD_REQUEST, Json(error));
    };
    shared.messages.lock().unwrap().push(Sms {
        to: to.clone(),
        from: from.clone(),
        body: body.clone(),
    });
    let resource = serde_json::json!({
        "sid": format!("SM{:032}", shared.messages.lock().unwrap().len()),
        "account_sid": sid, "to": to, "from": from, "body": body, "status": "queued",
    });
    (StatusCode::CREATED, Json(resource))
}

impl SmsGateway {
    pub async fn start() -> SmsGateway {
        let shared = Shared::default();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SmsGateway { base_url, shared, server }
    }

    /// The settings that point Gatehouse at this gateway.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GATEHOUSE_SMS_API_URL", self.base_url.clone()),
            ("GATEHOUSE_SMS_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
            ("GATEHOUSE_SMS_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
            ("GATEHOUSE_SMS_FROM", FROM.to_owned()),
        ]
    }

    pub fn messages_to(&self, number: &str) -> Vec<Sms> {
        self.shared
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|sms| sms.to == number)
            .cloned()
            .collect()
    }

    /// Waits (polling, with a deadline) for the `count`-th message to `number`.
    pub async fn wait_for(&self, number: &str, count: usize) -> Sms {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.messages_to(number);
            if messages.len() >= count {
                return messages[count - 1].clone();
            }
            assert!(Instant::now() < deadline, "{number} received {} SMS", messages.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}
