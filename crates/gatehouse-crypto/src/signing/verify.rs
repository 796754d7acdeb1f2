//! Token verification against a set of public JWKs, choosing the key by `kid`.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::SigningAlgorithm;
use crate::CryptoError;

/// One verification key and the only algorithm it may be used with.
struct VerifyingKey {
    algorithm: SigningAlgorithm,
    decoding_key: DecodingKey,
}

/// Public keys that tokens are verified against: what a resource server, or another
/// Gatehouse instance, learns from a JWKS document.
///
/// A key is bound to the algorithm of its JWK, and a token is checked with the key its header
/// `kid` names, and only if the header's `alg` is that key's algorithm. So a token cannot
/// pick a weaker algorithm or another key than the one the issuer published.
pub struct PublicKeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl PublicKeySet {
    /// Reads `{"keys": [...]}`. Keys that cannot verify our tokens are skipped: those with
    /// `use` other than `"sig"`, without a `kid`, or with an algorithm we do not support (a
    /// published JWKS may well list encryption keys or RS384 keys). A key that claims a
    /// supported algorithm but is malformed, or a repeated `kid`, is an error.
    ///
    /// A JWK without `alg` gets the algorithm its key type implies: RS256 for RSA (what
    /// providers that omit `alg` use), ES256 for P-256, EdDSA for Ed25519.
    pub fn from_jwks(jwks: &Value) -> Result<PublicKeySet, CryptoError> {
        let entries = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("a JWKS is an object with a \"keys\" array"))?;
        let mut keys = HashMap::new();
        for jwk in entries {
            let Some((kid, key)) = verifying_key(jwk)? else {
                continue;
            };
            if keys.insert(kid.clone(), key).is_some() {
                return Err(invalid(&format!("two keys share the kid {kid:?}")));
            }
        }
        Ok(PublicKeySet { keys })
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was usable.
    /// Whether a key of this set has `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` and returns its claims.
    ///
    /// Rejected: a header without a `kid` or with one we do not know, an `alg` other than
    /// that key's (including `"none"`, which jsonwebtoken cannot even parse), a `typ` other
    /// than `expected_typ` (compared as RFC 7515 says: case-insensitively, with an optional
    /// `application/` prefix), a bad signature, and whatever `validation` rejects (its
    /// `algorithms` list is replaced by the key's algorithm). An expired token gives
    /// [`CryptoError::TokenExpired`].
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected_typ: Option<&str>,
        validation: &Validation,
    ) -> Result<T, CryptoError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| CryptoError::Verification("malformed token or header".to_owned()))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| CryptoError::Verification("token has no kid".to_owned()))?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::Verification("unknown kid".to_owned()))?;
        if header.alg != key.algorithm.jsonwebtoken_algorithm() {
            return Err(CryptoError::Verification(format!(
                "token alg does not match the key's {}",
                key.algorithm
            )));
        }
        if let Some(expected) = expected_typ
            && !typ_matches(header.typ.as_deref(), expected)
        {
            return Err(CryptoError::Verification(format!("token typ is not {expected}")));
        }
        let mut validation = validation.clone();
        validation.algorithms = vec![key.algorithm.jsonwebtoken_algorithm()];
        jsonwebtoken::decode::<T>(token, &key.decoding_key, &validation)
            .map(|data| data.claims)
            .map_err(|error| verification_error(error.kind()))
    }
}

impl fmt::Debug for PublicKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("PublicKeySet").field("kids", &kids).finish()
    }
}

/// The key described by one JWK, or `None` when it is not a signature key we can use.
fn verifying_key(jwk: &Value) -> Result<Option<(String, VerifyingKey)>, CryptoError> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if member("use").is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    let Some(kid) = member("kid") else {
        return Ok(None);
    };
    let kty = member("kty").unwrap_or_default();
    let crv = member("crv");
    let algorithm = match member("alg") {
        Some(alg) => match alg.parse::<SigningAlgorithm>() {
            Ok(algorithm) => algorithm,
            Err(_) => return Ok(None),
        },
        None => match (kty, crv) {
            ("RSA", _) => SigningAlgorithm::RS256,
            ("EC", Some("P-256")) => SigningAlgorithm::ES256,
            ("OKP", Some("Ed25519")) => SigningAlgorithm::EdDSA,
            _ => return Ok(None),
        },
    };
    let required = |name: &str| {
        member(name).ok_or_else(|| invalid(&format!("{algorithm} key {kid:?} lacks {name:?}")))
    };
    let mismatch = || invalid(&format!("key {kid:?} is not a {algorithm} key"));
    let malformed = |_| invalid(&format!("key {kid:?} has malformed members"));
    let decoding_key = match algorithm {
        SigningAlgorithm::RS256 if kty == "RSA" => {
            DecodingKey::from_rsa_components(required("n")?, required("e")?).map_err(malformed)?
        }
        SigningAlgorithm::ES256 if kty == "EC" && crv == Some("P-256") => {
            DecodingKey::from_ec_components(required("x")?, required("y")?).map_err(malformed)?
        }
        SigningAlgorithm::EdDSA if kty == "OKP" && crv == Some("Ed25519") => {
            DecodingKey::from_ed_components(required("x")?).map_err(malformed)?
        }
        _ => return Err(mismatch()),
    };
    Ok(Some((kid.to_owned(), VerifyingKey { algorithm, decoding_key })))
}

/// RFC 7515 section 4.1.9: `typ` is a media type, compared case-insensitively, and the
/// `application/` prefix may be left out.
pub(super) fn typ_matches(actual: Option<&str>, expected: &str) -> bool {
    fn short(typ: &str) -> &str {
        match typ.split_at_checked("application/".len()) {
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => typ,
        }
    }
    actual.is_some_and(|actual| short(actual).eq_ignore_ascii_case(short(expected)))
}

/// Maps jsonwebtoken's error to ours, leaving out details that could echo token contents.
pub(super) fn verification_error(kind: &ErrorKind) -> CryptoError {
    let reason = match kind {
        ErrorKind::ExpiredSignature => return CryptoError::TokenExpired,
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::ImmatureSignature => "token not valid yet",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSubject => "wrong subject",
        ErrorKind::MissingRequiredClaim(claim) => {
            return CryptoError::Verification(format!("missing claim {claim}"));
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "algorithm not allowed",
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
            "claims do not have the expected shape"
        }
        _ => "malformed token",
    };
    CryptoError::Verification(reason.to_owned())
}

fn invalid(message: &str) -> CryptoError {
    CryptoError::InvalidKey(format!("JWKS: {message}"))
}
