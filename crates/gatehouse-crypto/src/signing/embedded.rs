//! JWS that carry their own public key in the `jwk` header: DPoP proofs (RFC 9449 §4.2).
//! The signature proves possession of the key whose RFC 7638 thumbprint the caller binds
//! tokens to; what the claims must say is the caller's to check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::verify::{typ_matches, verification_error};
use crate::CryptoError;

/// The algorithms a self-keyed JWS may use, by JOSE name: asymmetric only (a `jwk` holding a
/// shared secret would prove nothing).
pub const EMBEDDED_KEY_ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256", "PS256"];

/// Longest compact JWS accepted: a proof with a 4096-bit RSA key is about 1.5 KiB.
pub const MAX_EMBEDDED_JWS_LENGTH: usize = 8192;

/// What a verified self-keyed JWS says.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedKeyJws {
    /// The JWK SHA-256 thumbprint (RFC 7638), base64url: the `jkt` tokens are bound to.
    pub thumbprint: String,
    /// The claims, unchecked beyond being a JSON object.
    pub claims: serde_json::Map<String, Value>,
}

/// Verifies `token` with the public key of its own `jwk` header.
///
/// Rejected: a longer token than [`MAX_EMBEDDED_JWS_LENGTH`]; a `typ` other than `typ`; an
/// `alg` outside [`EMBEDDED_KEY_ALGORITHMS`] (`none` and HMAC included); no `jwk`, a symmetric
/// one, or one that carries private members (RFC 9449 §4.3: a proof must not leak its key);
/// a key of another family than `alg`; a bad signature; claims that are not a JSON object.
/// Nothing about `exp`, `aud` or `iss` is checked here.
pub fn verify_embedded_key(token: &str, typ: &str) -> Result<EmbeddedKeyJws, CryptoError> {
    if token.len() > MAX_EMBEDDED_JWS_LENGTH {
        return Err(CryptoError::Verification("token too long".to_owned()));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| CryptoError::Verification("malformed token or header".to_owned()))?;
    if !typ_matches(header.typ.as_deref(), typ) {
        return Err(CryptoError::Verification(format!("token typ is not {typ}")));
    }
    let algorithm = header.alg;
    if !allowed(algorithm) {
        return Err(CryptoError::Verification("algorithm not allowed".to_owned()));
    }
    let jwk =
        header.jwk.ok_or_else(|| CryptoError::Verification("the header has no jwk".to_owned()))?;
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) || has_private_members(token) {
        return Err(CryptoError::Verification("the header's jwk is not a public key".to_owned()));
    }
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| CryptoError::Verification("the header's jwk is malformed".to_owned()))?;
    let thumbprint = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| CryptoError::Verification("the header's jwk is malformed".to_owned()))?;
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
        .map_err(|error| verification_error(error.kind()))?
        .claims;
    Ok(EmbeddedKeyJws { thumbprint, claims })
}

fn allowed(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
            | Algorithm::RS256
            | Algorithm::PS256
    )
}

/// Whether the protected header's `jwk` names a private-key member. jsonwebtoken's `Jwk` drops
/// unknown members, so the header's JSON is read again for that one question.
fn has_private_members(token: &str) -> bool {
    let Some(encoded) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded) else {
        return true;
    };
    let Ok(header) = serde_json::from_slice::<Value>(&bytes) else {
        return true;
    };
    let Some(jwk) = header.get("jwk").and_then(Value::as_object) else {
        return true;
    };
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].iter().any(|member| jwk.contains_key(*member))
}

/// `base64url(SHA-256(value))`: a DPoP proof's `ath` for an access token (RFC 9449 §4.2).
pub fn sha256_base64url(value: &str) -> String {
    use sha2::{Digest as _, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}
