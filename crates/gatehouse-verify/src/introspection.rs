//! Opaque tokens (Gatehouse API keys) through RFC 7662 introspection, as a confidential
//! client, with answers cached briefly under a SHA-256 of the token (never the token itself).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use reqwest::header::ACCEPT;
use serde_json::Value;

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::fetch::{IssuerClient, read_json};
use crate::settings::Settings;

type TokenDigest = [u8; 32];

/// Recent answers: the claims of an active token, or [`VerifyError::Inactive`].
#[derive(Default)]
pub(crate) struct IntrospectionCache {
    entries: HashMap<TokenDigest, (Instant, Result<Claims, VerifyError>)>,
}

impl IntrospectionCache {
    fn get(&self, digest: &TokenDigest, now: Instant) -> Option<Result<Claims, VerifyError>> {
        self.entries.get(digest).filter(|(until, _)| now < *until).map(|(_, answer)| answer.clone())
    }

    /// Keeps `answer` until `until`. When full, expired entries go first, then everything:
    /// made-up tokens cannot grow the cache without bound.
    fn put(
        &mut self,
        digest: TokenDigest,
        until: Instant,
        answer: Result<Claims, VerifyError>,
        capacity: usize,
    ) {
        if capacity == 0 {
            return;
        }
        if self.entries.len() >= capacity {
            let now = Instant::now();
            self.entries.retain(|_, (kept_until, _)| now < *kept_until);
            if self.entries.len() >= capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(digest, (until, answer));
    }
}

/// Introspects opaque tokens for one verifier, remembering recent answers.
#[derive(Default)]
pub(crate) struct Introspector {
    cache: std::sync::Mutex<IntrospectionCache>,
}

impl Introspector {
    pub async fn introspect(
        &self,
        issuer: &IssuerClient,
        verifier: &Settings,
        token: &str,
    ) -> Result<Claims, VerifyError> {
        let settings =
            verifier.introspection.as_ref().ok_or(VerifyError::OpaqueTokenNotAccepted)?;
        let mut token_digest = [0u8; 32];
        token_digest.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        if let Some(answer) = self.cache().get(&token_digest, Instant::now()) {
            return answer;
        }
        let answer = ask(issuer, verifier, token).await?;
        let (answer, lifetime) = match answer {
            None => (Err(VerifyError::Inactive), settings.cache_ttl),
            Some(claims) => {
                check_introspected(verifier, &claims)?;
                // Never reuse an answer past the token's own expiry.
                let remaining = claims.exp.map_or(settings.cache_ttl, |exp| {
                    Duration::from_secs(
                        u64::try_from(exp.saturating_sub(now_seconds())).unwrap_or(0),
                    )
                });
                (Ok(claims), settings.cache_ttl.min(remaining))
            }
        };
        if !lifetime.is_zero() {
            let until = Instant::now() + lifetime;
            self.cache().put(token_digest, until, answer.clone(), settings.cache_capacity);
        }
        answer
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, IntrospectionCache> {
        // A panic while holding the lock cannot leave the map half-written in a way that
        // matters: at worst an entry is missing.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// POSTs the token; `None` when the issuer says it is not active.
async fn ask(
    issuer: &IssuerClient,
    verifier: &Settings,
    token: &str,
) -> Result<Option<Claims>, VerifyError> {
    let unavailable = VerifyError::IssuerUnavailable;
    let Some(settings) = &verifier.introspection else {
        return Err(VerifyError::OpaqueTokenNotAccepted);
    };
    let endpoint = match &settings.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => issuer
            .discovered(verifier)
            .await
            .map_err(unavailable)?
            .introspection_endpoint
            .clone()
            .ok_or_else(|| unavailable("the issuer names no introspection_endpoint".into()))?,
    };
    // RFC 6749 section 2.3.1: the credentials are form-encoded before Basic encoding.
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let client_id: String = encode(&settings.client_id);
    let client_secret: String = encode(&settings.client_secret.0);
    let response = issuer
        .http
        .post(&endpoint)
        .header(ACCEPT, "application/json")
        .basic_auth(client_id, Some(client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .map_err(|error| unavailable(format!("{endpoint}: {error}")))?;
    if !response.status().is_success() {
        return Err(unavailable(format!("{endpoint} answered {}", response.status())));
    }
    let mut answer = match read_json(response).await {
        Ok(Value::Object(answer)) => answer,
        Ok(_) => return Err(unavailable(format!("{endpoint}: answer is not an object"))),
        Err(error) => return Err(unavailable(format!("{endpoint}: {error}"))),
    };
    if answer.remove("active") != Some(Value::Bool(true)) {
        return Ok(None);
    }
    serde_json::from_value(Value::Object(answer))
        .map(Some)
        .map_err(|_| unavailable(format!("{endpoint}: an active answer without sub")))
}

/// The checks a JWT gets, on the members the answer has (an API key has no `aud`).
fn check_introspected(settings: &Settings, claims: &Claims) -> Result<(), VerifyError> {
    let now = now_seconds();
    let leeway = i64::try_from(settings.leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
        return Err(VerifyError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(VerifyError::NotYetValid);
    }
    if claims.iss.as_ref().is_some_and(|iss| *iss != settings.issuer) {
        return Err(VerifyError::WrongIssuer);
    }
    if !claims.aud.is_empty() && !claims.aud.iter().any(|aud| settings.audiences.contains(aud)) {
        return Err(VerifyError::WrongAudience);
    }
    Ok(())
}

fn now_seconds() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}
