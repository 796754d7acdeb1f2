//! `Verifier`: checks a bearer token, JWT or opaque, against its issuer. JWTs are verified
//! offline against the cached key set; the set is fetched on first use, again when stale, and
//! again (rate-limited) when a token names a key it does not have — how a rotation arrives.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, TokenData};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::fetch::{Fetched, IssuerClient};
use crate::introspection::Introspector;
use crate::jwks::{KeySet, VerifyingKey};
use crate::settings::Settings;

/// Verifies Gatehouse access tokens. Cheap to clone: clones share one key cache.
///
/// ```no_run
/// # async fn example(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = gatehouse_verify::Verifier::builder("https://auth.example.com")
///     .audience("https://auth.example.com")
///     .build()?;
/// let claims = verifier.verify(token).await?;
/// println!("{} may read orders: {}", claims.sub, claims.has_scope("orders:read"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// How a token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A JWT, verified offline against the issuer's published keys.
    Jwt,
    /// An opaque token (an API key), which the issuer's introspection endpoint said is active.
    Introspected,
}

/// A token that passed every check, with its claims (it derefs to [`Claims`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub kind: TokenKind,
}

impl Deref for VerifiedToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

struct Inner {
    settings: Settings,
    issuer: IssuerClient,
    keys: ArcSwap<CachedKeys>,
    refresh: tokio::sync::Mutex<RefreshState>,
    introspector: Introspector,
    /// DPoP proofs seen (`verify_dpop`).
    replay: crate::dpop::ReplayCache,
}

/// The key set in use and until when it is fresh. `generation` counts successful fetches
/// (0: none yet), so a caller that waited for the refresh lock sees that someone else just
/// fetched.
#[derive(Default)]
struct CachedKeys {
    set: KeySet,
    fresh_until: Option<Instant>,
    generation: u64,
}

impl CachedKeys {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }
}

#[derive(Default)]
struct RefreshState {
    /// When a token with an unknown `kid` last made us fetch.
    last_unknown_kid_fetch: Option<Instant>,
    /// After a failed fetch, no other before this.
    retry_not_before: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// No key set yet: fetch, and fail the verification if that fails.
    FirstUse,
    /// The set is past its max-age: fetch if nobody else is, keep the old set on failure.
    Stale,
    /// A token names a `kid` we do not have: fetch at most once per interval.
    UnknownKid,
    /// [`Verifier::refresh_keys`]: fetch now.
    Forced,
}

impl Verifier {
    pub(crate) fn from_settings(settings: Settings, http: reqwest::Client) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                settings,
                issuer: IssuerClient::new(http),
                keys: ArcSwap::from_pointee(CachedKeys::default()),
                refresh: tokio::sync::Mutex::new(RefreshState::default()),
                introspector: Introspector::default(),
                replay: crate::dpop::ReplayCache::default(),
            }),
        }
    }

    /// The issuer this verifier accepts tokens from.
    pub fn issuer(&self) -> &str {
        &self.inner.settings.issuer
    }

    /// Verifies a bearer token and returns its claims. A JWT (anything with a `.`) is checked
    /// offline: signature with the published key its `kid` names, `alg` allowed and the key's,
    /// `typ`, `iss`, `aud`, `exp` and `nbf` with leeway. Anything else is an opaque token,
    /// asked about at the introspection endpoint when one is configured. A sender-constrained
    /// token (`cnf.jkt` of DPoP, `cnf.x5t#S256` of mutual TLS) is refused: a bearer token
    /// check cannot see the proof of possession it needs.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_token(token).await.map(|verified| verified.claims)
    }

    /// [`Self::verify`], also saying how the token was verified.
    pub async fn verify_token(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let verified = self.verify_any(token).await?;
        // A sender-constrained token used as a bearer token (RFC 9449 §7.1, RFC 8705 §3):
        // whoever presents it without the proof of its key may have stolen it.
        if verified
            .claims
            .cnf
            .as_ref()
            .is_some_and(|cnf| cnf.jkt.is_some() || cnf.x5t_s256.is_some())
        {
            return Err(VerifyError::SenderConstrained);
        }
        Ok(verified)
    }

    /// A DPoP-bound token presented as `Authorization: DPoP <token>` with the request's
    /// `DPoP` header (`proof`), for the request `method` on `url` (its full URL as the client
    /// called it — behind a proxy, the public one): the token verified as by
    /// [`Self::verify_token`], bound to a key (`cnf.jkt`), and the proof checked (RFC 9449
    /// §4.3: signature by that key, `typ`, `alg`, `htm`, `htu`, `iat` within a minute, `ath`,
    /// `jti` never seen by this verifier). Server nonces are not used.
    pub async fn verify_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        url: &str,
    ) -> Result<VerifiedToken, VerifyError> {
        let verified = self.verify_any(token).await?;
        let jkt = verified
            .claims
            .cnf
            .as_ref()
            .and_then(|cnf| cnf.jkt.clone())
            .ok_or(VerifyError::InvalidDpopProof("the token is not DPoP-bound"))?;
        crate::dpop::check_proof(&self.inner.replay, proof, token, &jkt, method, url)?;
        Ok(verified)
    }

    async fn verify_any(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        if token.contains('.') {
            let claims = self.inner.verify_jwt(token).await?;
            Ok(VerifiedToken { claims, kind: TokenKind::Jwt })
        } else if token.is_empty() {
            Err(VerifyError::Malformed)
        } else {
            let inner = &self.inner;
            let claims =
                inner.introspector.introspect(&inner.issuer, &inner.settings, token).await?;
            Ok(VerifiedToken { claims, kind: TokenKind::Introspected })
        }
    }

    /// Fetches the key set now (resolving the discovery document first if needed), so a
    /// service can fail at start-up rather than at its first request.
    pub async fn refresh_keys(&self) -> Result<(), VerifyError> {
        let seen = self.inner.keys.load().generation;
        self.inner.refresh(Reason::Forced, seen).await
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl Inner {
    async fn verify_jwt(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = self.check_header(token)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKeyId)?;
        // The hot path: a fresh set that has the key. Nothing is locked or counted.
        {
            let keys = self.keys.load();
            if keys.is_fresh(Instant::now())
                && let Some(key) = keys.set.keys.get(kid)
            {
                return self.decode(token, &header, key);
            }
        }
        let keys = self.keys.load_full();
        // Whatever fetch completes after this point is as new as one we would make.
        let seen = keys.generation;
        if seen == 0 {
            self.refresh(Reason::FirstUse, seen).await?;
        } else if !keys.is_fresh(Instant::now()) {
            self.refresh(Reason::Stale, seen).await?;
        }
        let keys = self.keys.load_full();
        if let Some(key) = keys.set.keys.get(kid) {
            return self.decode(token, &header, key);
        }
        self.refresh(Reason::UnknownKid, seen).await?;
        let keys = self.keys.load();
        let key = keys.set.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        self.decode(token, &header, key)
    }

    /// What the header alone decides: well-formed, an allowed algorithm, the expected `typ`.
    /// `alg: none` is not even a header jsonwebtoken can read.
    fn check_header(&self, token: &str) -> Result<Header, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        if let Some(expected) = &self.settings.token_type
            && !typ_matches(header.typ.as_deref(), expected)
        {
            return Err(VerifyError::WrongType);
        }
        Ok(header)
    }

    fn decode(
        &self,
        token: &str,
        header: &Header,
        key: &VerifyingKey,
    ) -> Result<Claims, VerifyError> {
        if !key.algorithms.contains(&header.alg) {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        let validation =
            self.settings.validations.get(&header.alg).ok_or(VerifyError::AlgorithmNotAllowed)?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding_key, validation)
            .map(|data: TokenData<Claims>| data.claims)
            .map_err(|error| verification_error(error.kind()))
    }

    /// Fetches the key set if `reason` still calls for it once the refresh lock is held: one
    /// fetch at a time, and none when a fetch completed since the caller saw generation
    /// `seen` (whoever waited behind a fetch uses its result).
    async fn refresh(&self, reason: Reason, seen: u64) -> Result<(), VerifyError> {
        let mut state = match reason {
            // A stale set still verifies: if someone is already fetching, carry on with it.
            Reason::Stale => match self.refresh.try_lock() {
                Ok(state) => state,
                Err(_) => return Ok(()),
            },
            _ => self.refresh.lock().await,
        };
        if reason != Reason::Forced && self.keys.load().generation != seen {
            return Ok(());
        }
        let now = Instant::now();
        let backing_off = state.retry_not_before.is_some_and(|not_before| now < not_before);
        let rate_limited = state.last_unknown_kid_fetch.is_some_and(|last| {
            now.saturating_duration_since(last) < self.settings.unknown_kid_refresh_interval
        });
        match reason {
            Reason::FirstUse if backing_off => {
                return Err(VerifyError::IssuerUnavailable(
                    "the key set could not be fetched moments ago".to_owned(),
                ));
            }
            Reason::Stale | Reason::UnknownKid if backing_off => return Ok(()),
            Reason::UnknownKid if rate_limited => return Ok(()),
            Reason::UnknownKid => state.last_unknown_kid_fetch = Some(now),
            _ => {}
        }
        match self.issuer.fetch_keys(&self.settings).await {
            Ok(Fetched { keys, fresh_for }) => {
                state.retry_not_before = None;
                let generation = self.keys.load().generation + 1;
                self.keys.store(Arc::new(CachedKeys {
                    set: keys,
                    fresh_until: Some(Instant::now() + fresh_for),
                    generation,
                }));
                Ok(())
            }
            Err(message) => {
                tracing::warn!(issuer = %self.settings.issuer, "JWKS fetch failed: {message}");
                state.retry_not_before = Some(Instant::now() + self.failure_backoff());
                match reason {
                    Reason::Stale => Ok(()),
                    _ => Err(VerifyError::IssuerUnavailable(message)),
                }
            }
        }
    }

    /// The pause after a failed fetch: the unknown-kid interval, at most 10 s.
    fn failure_backoff(&self) -> Duration {
        self.settings.unknown_kid_refresh_interval.min(Duration::from_secs(10))
    }
}

/// RFC 7515 section 4.1.9: `typ` is a media type, compared case-insensitively, and the
/// `application/` prefix may be left out.
fn typ_matches(actual: Option<&str>, expected: &str) -> bool {
    fn short(typ: &str) -> &str {
        match typ.split_at_checked("application/".len()) {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => typ,
        }
    }
    actual.is_some_and(|actual| short(actual).eq_ignore_ascii_case(short(expected)))
}

/// jsonwebtoken's verdict in our terms (never with token contents).
fn verification_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            VerifyError::AlgorithmNotAllowed
        }
        ErrorKind::MissingRequiredClaim(claim) => VerifyError::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            _ => "a registered claim",
        }),
        _ => VerifyError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::typ_matches;

    #[test]
    fn typ_is_a_media_type() {
        assert!(typ_matches(Some("at+jwt"), "at+jwt"));
        assert!(typ_matches(Some("AT+JWT"), "at+jwt"));
        assert!(typ_matches(Some("application/at+jwt"), "at+jwt"));
        assert!(!typ_matches(Some("JWT"), "at+jwt"));
        assert!(!typ_matches(Some("application/jwt"), "at+jwt"));
        assert!(!typ_matches(None, "at+jwt"));
    }
}
