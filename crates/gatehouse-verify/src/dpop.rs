//! DPoP at the resource server (RFC 9449 §7): a token bound to a key (`cnf.jkt`) is accepted
//! with `Authorization: DPoP <token>` and a `DPoP` proof of that key for this request — the
//! proof's signature by the key in its own `jwk` header, `typ: dpop+jwt`, an asymmetric
//! `alg`, `htm` and `htu` naming this request, `iat` within a minute, `ath` the token's hash,
//! and a `jti` not seen before (remembered in memory while the proof could verify: one
//! process's memory, so run one verifier per resource server process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::VerifyError;

/// How far a proof's `iat` may be from now, either way.
pub(crate) const IAT_WINDOW_SECONDS: i64 = 60;
/// Longest proof accepted.
const MAX_PROOF_LENGTH: usize = 8192;
/// Most proofs remembered at once; past it (after forgetting expired ones) proofs are
/// refused rather than accepted unremembered.
const REPLAY_CAPACITY: usize = 100_000;

fn refused(reason: &'static str) -> VerifyError {
    VerifyError::InvalidDpopProof(reason)
}

/// The proofs seen, by (thumbprint, `jti`), until they could no longer verify.
#[derive(Default)]
pub(crate) struct ReplayCache {
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl ReplayCache {
    /// Remembers a proof until `until`: `false` when it was seen before (a replay).
    fn remember(&self, jkt: &str, jti: &str, until: i64, now: i64) -> Result<bool, VerifyError> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (jkt.to_owned(), jti.to_owned());
        if seen.get(&key).is_some_and(|expiry| *expiry >= now) {
            return Ok(false);
        }
        if seen.len() >= REPLAY_CAPACITY {
            seen.retain(|_, expiry| *expiry >= now);
            if seen.len() >= REPLAY_CAPACITY {
                return Err(refused("too many proofs at once"));
            }
        }
        seen.insert(key, until);
        Ok(true)
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Whether the protected header's `jwk` carries private members (jsonwebtoken's `Jwk` drops
/// them, so the header's JSON is read again for that one question).
fn has_private_members(proof: &str) -> bool {
    let Some(bytes) = proof.split('.').next().and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
    else {
        return true;
    };
    let Ok(header) = serde_json::from_slice::<Value>(&bytes) else { return true };
    let Some(jwk) = header.get("jwk").and_then(Value::as_object) else { return true };
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].iter().any(|member| jwk.contains_key(*member))
}

/// Whether `htu` names `url`, ignoring query and fragment, after syntax normalisation.
fn same_uri(htu: &str, url: &str) -> bool {
    let (Ok(htu), Ok(url)) = (url::Url::parse(htu), url::Url::parse(url)) else { return false };
    htu.scheme() == url.scheme()
        && htu.host_str() == url.host_str()
        && htu.port_or_known_default() == url.port_or_known_default()
        && htu.path() == url.path()
}

/// Checks `proof` for a request `method` `url` presenting `token` bound to `jkt`.
pub(crate) fn check_proof(
    replay: &ReplayCache,
    proof: &str,
    token: &str,
    jkt: &str,
    method: &str,
    url: &str,
) -> Result<(), VerifyError> {
    if proof.len() > MAX_PROOF_LENGTH {
        return Err(refused("the proof is too long"));
    }
    let header = jsonwebtoken::decode_header(proof).map_err(|_| refused("malformed proof"))?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt"));
    if !typ_ok {
        return Err(refused("the proof's typ is not dpop+jwt"));
    }
    if !matches!(
        header.alg,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
            | Algorithm::RS256
            | Algorithm::PS256
    ) {
        return Err(refused("the proof's algorithm is not allowed"));
    }
    let jwk = header.jwk.ok_or_else(|| refused("the proof has no jwk"))?;
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) || has_private_members(proof) {
        return Err(refused("the proof's jwk is not a public key"));
    }
    let thumbprint = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| refused("the proof's jwk is malformed"))?;
    if thumbprint != jkt {
        return Err(refused("the proof is not by the key the token is bound to"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| refused("the proof's jwk is malformed"))?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| refused("the proof's signature does not verify"))?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(method) {
        return Err(refused("the proof is for another method"));
    }
    if !text("htu").is_some_and(|htu| same_uri(htu, url)) {
        return Err(refused("the proof is for another URL"));
    }
    let now = now();
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| refused("no iat"))?;
    if (now - iat).abs() > IAT_WINDOW_SECONDS {
        return Err(refused("the proof's iat is too far from now"));
    }
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    if text("ath") != Some(URL_SAFE_NO_PAD.encode(hash.as_ref()).as_str()) {
        return Err(refused("the proof's ath is not this token's"));
    }
    let jti = text("jti").filter(|jti| !jti.is_empty() && jti.len() <= 256);
    let jti = jti.ok_or_else(|| refused("the proof has no usable jti"))?;
    if !replay.remember(jkt, jti, iat + IAT_WINDOW_SECONDS + 1, now)? {
        return Err(refused("the proof was used before"));
    }
    Ok(())
}
