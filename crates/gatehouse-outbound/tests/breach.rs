//! The HIBP range client against a local stand-in that speaks the real range API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::ManualClock;
use gatehouse_domain::passwords::BreachedPasswordCheck;
use gatehouse_outbound::breach::HibpClient;
use sha1::{Digest as _, Sha1};

fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes()).iter().map(|byte| format!("{byte:02X}")).collect()
}

/// Two passwords whose SHA-1 hashes share the 5-digit prefix, found by a birthday search over
/// 20 bits (about a thousand hashes, always the same ones).
fn two_passwords_sharing_a_prefix() -> (String, String) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for index in 0.. {
        let password = format!("candidate-{index}");
        let prefix = sha1_hex(&password)[..5].to_owned();
        if let Some(earlier) = seen.insert(prefix, password.clone()) {
            return (earlier, password);
        }
    }
    unreachable!("the search stops at the first shared prefix")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Answer,
    NotFound,
    ServerError,
    Hang,
}

/// One request as the stand-in saw it.
#[derive(Debug)]
struct Seen {
    path_and_query: String,
    headers: Vec<(String, String)>,
}

/// The stand-in's data: full hashes with their counts (0 for padding) and what it was asked.
struct StandIn {
    entries: Vec<(String, u64)>,
    mode: Mutex<Mode>,
    seen: Mutex<Vec<Seen>>,
}

async fn range(State(stand_in): State<Arc<StandIn>>, uri: Uri, headers: HeaderMap) -> Response {
    stand_in.seen.lock().unwrap().push(Seen {
        path_and_query: uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
            .collect(),
    });
    let mode = *stand_in.mode.lock().unwrap();
    match mode {
        Mode::NotFound => return StatusCode::NOT_FOUND.into_response(),
        Mode::ServerError => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        // Never answers: the client's timeout is what ends the request.
        Mode::Hang => return std::future::pending::<Response>().await,
        Mode::Answer => {}
    }
    let Some(prefix) = uri.path().strip_prefix("/range/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if prefix.len() != 5 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "The hash prefix was not in a valid format")
            .into_response();
    }
    let prefix = prefix.to_ascii_uppercase();
    let mut lines: Vec<String> = stand_in
        .entries
        .iter()
        .filter(|(hash, _)| hash.starts_with(&prefix))
        .map(|(hash, count)| format!("{}:{count}", &hash[5..]))
        .collect();
    if headers.get("add-padding").is_some_and(|value| value == "true") {
        // Like the real API: fake suffixes with count 0 so every answer looks alike.
        lines.extend((0..3).map(|i| format!("{}:0", &sha1_hex(&format!("pad-{prefix}-{i}"))[5..])));
    }
    // The real API answers CRLF-separated lines without a final newline.
    lines.join("\r\n").into_response()
}

struct Harness {
    stand_in: Arc<StandIn>,
    base_url: String,
    breached: String,
    unbreached_same_prefix: String,
    padded: String,
}

impl Harness {
    /// Starts the stand-in on an ephemeral port; ready as soon as the listener is bound.
    async fn start() -> Harness {
        let (breached, unbreached_same_prefix) = two_passwords_sharing_a_prefix();
        let padded = "listed only as padding".to_owned();
        let entries = vec![
            (sha1_hex(&breached), 42),
            (sha1_hex("another breached password"), 7),
            (sha1_hex(&padded), 0),
        ];
        let stand_in =
            Arc::new(StandIn { entries, mode: Mutex::new(Mode::Answer), seen: Mutex::default() });
        let app = Router::new().fallback(range).with_state(stand_in.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Harness {
            stand_in,
            base_url: format!("http://{address}"),
            breached,
            unbreached_same_prefix,
            padded,
        }
    }

    fn client(&self) -> HibpClient {
        HibpClient::new(&self.base_url, Duration::from_secs(5), Duration::from_secs(60)).unwrap()
    }

    fn set_mode(&self, mode: Mode) {
        *self.stand_in.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> usize {
        self.stand_in.seen.lock().unwrap().len()
    }
}

#[tokio::test]
async fn breached_passwords_are_found_and_others_are_not() {
    let harness = Harness::start().await;
    let client = harness.client();
    assert_eq!(client.is_breached(&harness.breached).await, Ok(true));
    assert_eq!(client.is_breached("another breached password").await, Ok(true));
    assert_eq!(client.is_breached("a password nobody has breached").await, Ok(false));
}

#[tokio::test]
async fn an_unbreached_password_under_a_breached_prefix_is_not_breached() {
    let harness = Harness::start().await;
    assert_eq!(sha1_hex(&harness.breached)[..5], sha1_hex(&harness.unbreached_same_prefix)[..5]);
    let client = harness.client();
    assert_eq!(client.is_breached(&harness.unbreached_same_prefix).await, Ok(false));
    assert_eq!(harness.client().is_breached(&harness.breached).await, Ok(true));
}

#[tokio::test]
async fn padding_lines_with_count_zero_are_not_breaches() {
    let harness = Harness::start().await;
    assert_eq!(harness.client().is_breached(&harness.padded).await, Ok(false));
}

#[tokio::test]
async fn only_the_five_digit_prefix_leaves_the_process() {
    let harness = Harness::start().await;
    let client = harness.client();
    let passwords = [harness.breached.clone(), "a password nobody has breached".to_owned()];
    for password in &passwords {
        client.is_breached(password).await.unwrap();
    }
    let seen = harness.stand_in.seen.lock().unwrap();
    assert_eq!(seen.len(), passwords.len());
    for (request, password) in seen.iter().zip(&passwords) {
        let hash = sha1_hex(password);
        assert_eq!(request.path_and_query, format!("/range/{}", &hash[..5]));
        let prefix = request.path_and_query.strip_prefix("/range/").unwrap();
        assert!(
            prefix.len() == 5 && prefix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
        );

        let header = |name: &str| {
            request.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
        };
        assert_eq!(header("add-padding"), Some("true"));
        assert_eq!(header("user-agent"), Some("gatehouse"));

        let everything = format!("{request:?}").to_ascii_uppercase();
        for secret in [hash.as_str(), &hash[5..], &password.to_ascii_uppercase()] {
            assert!(!everything.contains(secret), "request {request:?} leaks {secret}");
        }
    }
}

#[tokio::test]
async fn the_cache_answers_a_prefix_again_until_it_expires() {
    let harness = Harness::start().await;
    let clock = Arc::new(ManualClock::new(1_000));
    let client = harness.client().with_clock(clock.clone());
    assert_eq!(client.is_breached(&harness.breached).await, Ok(true));
    assert_eq!(harness.requests(), 1);
    assert_eq!(client.is_breached(&harness.breached).await, Ok(true));
    // Same prefix, other password: answered from the same cached range.
    assert_eq!(client.is_breached(&harness.unbreached_same_prefix).await, Ok(false));
    assert_eq!(harness.requests(), 1);
    assert_eq!(client.cached_prefixes(), 1);

    clock.advance(61);
    assert_eq!(client.is_breached(&harness.breached).await, Ok(true));
    assert_eq!(harness.requests(), 2);
}

#[tokio::test]
async fn error_answers_are_errors_and_are_not_cached() {
    let harness = Harness::start().await;
    let client = harness.client();
    let hash = sha1_hex(&harness.breached);
    for (mode, status) in [(Mode::ServerError, "500"), (Mode::NotFound, "404")] {
        harness.set_mode(mode);
        let reason = client.is_breached(&harness.breached).await.unwrap_err();
        assert!(reason.contains(status), "{reason}");
        assert!(!reason.contains(&harness.breached) && !reason.contains(&hash[..5]), "{reason}");
    }
    assert_eq!(client.cached_prefixes(), 0);

    harness.set_mode(Mode::Answer);
    assert_eq!(client.is_breached(&harness.breached).await, Ok(true));
    assert_eq!(harness.requests(), 3);
}

#[tokio::test]
async fn a_server_that_never_answers_is_an_error_within_the_timeout() {
    let harness = Harness::start().await;
    harness.set_mode(Mode::Hang);
    let timeout = Duration::from_millis(300);
    let client = HibpClient::new(&harness.base_url, timeout, Duration::from_secs(60)).unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.is_breached("anything"))
        .await
        .expect("the client's own timeout must end the request");
    let elapsed = started.elapsed();
    let reason = answer.unwrap_err();
    assert!(reason.contains("did not answer within 300 ms"), "{reason}");
    assert!(elapsed >= timeout && elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(harness.requests(), 1);
}

#[tokio::test]
async fn an_unreachable_service_is_an_error_without_the_hash() {
    // A port that was just free: nothing listens there any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client =
        HibpClient::new(&format!("http://{address}"), Duration::from_secs(5), Duration::ZERO)
            .unwrap();
    let password = "unreachable-check";
    let reason = client.is_breached(password).await.unwrap_err();
    assert!(reason.starts_with("range API request failed"), "{reason}");
    assert!(!reason.contains(password) && !reason.contains(&sha1_hex(password)[..5]), "{reason}");
}
