//! DPoP (RFC 9449): a client proves, with a signature over each request, that it holds the
//! private key its tokens are bound to (`cnf.jkt`, the key's RFC 7638 thumbprint). A stolen
//! DPoP-bound access or refresh token is useless without the key.
//!
//! A proof is checked here for what every endpoint asks of it: the header (`typ: dpop+jwt`,
//! an asymmetric `alg`, a public `jwk`) and signature (in `gatehouse-crypto`), then the
//! claims: `htm` and `htu` name this request, `iat` is within [`DPOP_IAT_WINDOW_SECONDS`] of
//! now, `jti` was never seen before (the replay store, shared through Redis when configured),
//! `ath` is the hash of the access token presented with it, and — when the server asks for
//! them — `nonce` is one it issued recently.
//!
//! Server nonces carry no state: a nonce is a keyed digest of the current
//! [`NONCE_PERIOD_SECONDS`] period, so every instance issues and accepts the same ones, and
//! one stays valid until the end of the next period.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::Digester;
use serde_json::Value;

use super::OAuthError;
use crate::clock::Clock;
use crate::store::StoreError;

/// The `typ` of a DPoP proof.
pub const DPOP_PROOF_TYPE: &str = "dpop+jwt";
/// The proof's request header, and the nonce's answer header.
pub const DPOP_HEADER: &str = "DPoP";
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";
/// `token_type` of a DPoP-bound access token, and its `Authorization` scheme.
pub const DPOP_TOKEN_TYPE: &str = "DPoP";
/// How far a proof's `iat` may be from now, either way (clock skew included).
pub const DPOP_IAT_WINDOW_SECONDS: i64 = 60;
/// How long one server nonce is issued; it is accepted for one period more.
pub const NONCE_PERIOD_SECONDS: i64 = 300;
/// Longest `jti` accepted (RFC 9449 suggests 96 bits of randomness; a UUID is 36 characters).
const MAX_JTI_LENGTH: usize = 256;
/// Purpose of the key nonces are derived with.
pub const DPOP_NONCE_DIGEST_PURPOSE: &str = "dpop-nonce";

/// The signature algorithms a proof may use, as discovery advertises them
/// (`dpop_signing_alg_values_supported`).
pub fn signing_algorithms() -> &'static [&'static str] {
    gatehouse_crypto::signing::EMBEDDED_KEY_ALGORITHMS
}

/// Where the `jti` of every accepted proof is remembered until it could no longer verify
/// (Redis when configured, else the `used_dpop_proofs` table, which the sweeper empties).
#[async_trait]
pub trait DpopProofStore: Send + Sync {
    /// Records `jti` for the key `jkt` until `expires_at`: `false` when it was recorded
    /// before (a replayed proof).
    async fn record_dpop_proof(
        &self,
        jkt: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone, Default)]
pub struct DpopSettings {
    /// Every proof must carry a nonce the server issued (`use_dpop_nonce` until it does).
    pub require_nonce: bool,
}

/// The request a proof must name.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The request's path under the issuer's origin (`htu` is the issuer's base URL and it).
    pub path: &'a str,
    /// The access token the proof is presented with (`ath`), at a resource.
    pub access_token: Option<&'a str>,
}

pub struct DpopService {
    store: Arc<dyn DpopProofStore>,
    clock: Arc<dyn Clock>,
    nonce_digester: Digester,
    settings: DpopSettings,
    /// The issuer without a trailing slash: `htu` is it and the request's path.
    base_url: String,
}

impl DpopService {
    pub fn new(
        store: Arc<dyn DpopProofStore>,
        clock: Arc<dyn Clock>,
        nonce_digester: Digester,
        settings: DpopSettings,
        issuer: &str,
    ) -> DpopService {
        DpopService {
            store,
            clock,
            nonce_digester,
            settings,
            base_url: issuer.trim_end_matches('/').to_owned(),
        }
    }

    pub fn settings(&self) -> &DpopSettings {
        &self.settings
    }

    /// The nonce to send in `DPoP-Nonce` now, when nonces are required.
    pub fn current_nonce(&self) -> Option<String> {
        self.settings.require_nonce.then(|| self.nonce_for(self.period()))
    }

    fn period(&self) -> i64 {
        self.clock.now().div_euclid(NONCE_PERIOD_SECONDS)
    }

    fn nonce_for(&self, period: i64) -> String {
        let digest = self.nonce_digester.digest(format!("dpop-nonce:{period}").as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..24])
    }

    fn nonce_is_current(&self, nonce: &str) -> bool {
        let period = self.period();
        [period, period - 1].iter().any(|period| {
            gatehouse_crypto::constant_time_eq(self.nonce_for(*period).as_bytes(), nonce.as_bytes())
        })
    }

    /// Checks `proof` for `target` and returns the thumbprint (`jkt`) of its key.
    pub async fn verify(&self, proof: &str, target: ProofTarget<'_>) -> Result<String, OAuthError> {
        let invalid = |reason: &str| OAuthError::InvalidDpopProof(reason.to_owned());
        let verified = gatehouse_crypto::signing::verify_embedded_key(proof, DPOP_PROOF_TYPE)
            .map_err(|error| match error {
                gatehouse_crypto::CryptoError::Verification(reason) => {
                    OAuthError::InvalidDpopProof(format!("the DPoP proof is invalid: {reason}"))
                }
                _ => invalid("the DPoP proof is invalid"),
            })?;
        let claims = verified.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("htm") != Some(target.method) {
            return Err(invalid("the DPoP proof's htm is not this request's method"));
        }
        let expected_htu = format!("{}{}", self.base_url, target.path);
        if !text("htu").is_some_and(|htu| same_uri(htu, &expected_htu)) {
            return Err(invalid("the DPoP proof's htu is not this request's URI"));
        }
        let now = self.clock.now();
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("the DPoP proof has no iat"))?;
        if (now - iat).abs() > DPOP_IAT_WINDOW_SECONDS {
            return Err(invalid("the DPoP proof's iat is too far from the server's clock"));
        }
        let jti = text("jti")
            .filter(|jti| !jti.is_empty() && jti.len() <= MAX_JTI_LENGTH)
            .ok_or_else(|| invalid("the DPoP proof has no usable jti"))?;
        match (target.access_token, text("ath")) {
            (Some(token), Some(ath)) => {
                let expected = gatehouse_crypto::signing::sha256_base64url(token);
                if !gatehouse_crypto::constant_time_eq(expected.as_bytes(), ath.as_bytes()) {
                    return Err(invalid("the DPoP proof's ath does not match the access token"));
                }
            }
            (Some(_), None) => return Err(invalid("the DPoP proof has no ath")),
            (None, _) => {}
        }
        if self.settings.require_nonce && !text("nonce").is_some_and(|n| self.nonce_is_current(n)) {
            return Err(OAuthError::UseDpopNonce);
        }
        // Remembered as long as the proof could verify: until its iat leaves the window.
        let remember_until = iat + DPOP_IAT_WINDOW_SECONDS + 1;
        if !self.store.record_dpop_proof(&verified.thumbprint, jti, remember_until, now).await? {
            return Err(invalid("the DPoP proof was used before"));
        }
        Ok(verified.thumbprint)
    }
}

/// Whether a proof's `htu` names `expected`, ignoring its query and fragment, after RFC 3986
/// syntax normalisation (case of scheme and host, default port).
fn same_uri(htu: &str, expected: &str) -> bool {
    let (Ok(htu), Ok(expected)) = (url::Url::parse(htu), url::Url::parse(expected)) else {
        return false;
    };
    htu.scheme() == expected.scheme()
        && htu.host_str() == expected.host_str()
        && htu.port_or_known_default() == expected.port_or_known_default()
        && htu.path() == expected.path()
}

/// A `dpop_jkt` parameter (RFC 9449 §10): a base64url SHA-256 thumbprint.
pub fn valid_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43 && jkt.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
