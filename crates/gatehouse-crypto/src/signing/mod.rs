//! JWS signing keys: generation and signing with aws-lc-rs, public JWKs and RFC 7638 key ids.
//!
//! Tokens are signed here with aws-lc-rs directly rather than through `jsonwebtoken::encode`:
//! jsonwebtoken's aws-lc backend wants RSA keys as PKCS#1, which aws-lc-rs cannot export (we
//! keep PKCS#8 for every algorithm), it re-parses and re-validates the private key on every
//! signature, and its `EncodingKey` keeps an unzeroized copy of the key. Assembling the
//! compact serialization is only base64url and concatenation (RFC 7515 section 7.1); the
//! signatures themselves come from aws-lc-rs. Verification ([`PublicKeySet`]) is jsonwebtoken's.

mod embedded;
mod pool;
mod verify;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

pub use embedded::{
    EMBEDDED_KEY_ALGORITHMS, EmbeddedKeyJws, MAX_EMBEDDED_JWS_LENGTH, sha256_base64url,
    verify_embedded_key,
};
pub use pool::on_signing_thread;
pub use verify::PublicKeySet;

use crate::CryptoError;

/// The JWS algorithms Gatehouse signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: the one every OpenID Connect client must support.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// The JOSE name (`"RS256"`, `"ES256"`, `"EdDSA"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// The matching jsonwebtoken algorithm, for verification.
    pub fn jsonwebtoken_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = CryptoError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "RS256" => Ok(SigningAlgorithm::RS256),
            "ES256" => Ok(SigningAlgorithm::ES256),
            "EdDSA" => Ok(SigningAlgorithm::EdDSA),
            _ => Err(CryptoError::InvalidKey(format!(
                "unsupported signing algorithm {text:?} (expected RS256, ES256 or EdDSA)"
            ))),
        }
    }
}

/// The parsed private key, kept in aws-lc memory (freed with its private parts cleared).
enum KeyPair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key with its public JWK and key id.
pub struct SigningKey {
    algorithm: SigningAlgorithm,
    key_pair: KeyPair,
    /// Kept so `pkcs8_der` is infallible and returns the exact bytes that were stored.
    pkcs8: Zeroizing<Vec<u8>>,
    kid: String,
    public_jwk: serde_json::Value,
}

impl SigningKey {
    /// A new random key. `rsa_bits` must be 2048, 3072 or 4096 for RS256 and is ignored
    /// otherwise. RSA generation takes from tens of milliseconds to seconds: run it on a
    /// blocking thread.
    pub fn generate(algorithm: SigningAlgorithm, rsa_bits: u32) -> Result<SigningKey, CryptoError> {
        let generation_failed = |_| CryptoError::Internal("key generation failed".to_owned());
        let pkcs8 = match algorithm {
            SigningAlgorithm::RS256 => {
                let size = match rsa_bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    other => {
                        return Err(CryptoError::InvalidKey(format!(
                            "RSA key size must be 2048, 3072 or 4096 bits, not {other}"
                        )));
                    }
                };
                let key_pair = RsaKeyPair::generate(size).map_err(generation_failed)?;
                let der = key_pair.as_der().map_err(generation_failed)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            SigningAlgorithm::ES256 => {
                let key_pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(generation_failed)?;
                let der = key_pair.to_pkcs8v1().map_err(generation_failed)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            SigningAlgorithm::EdDSA => {
                let key_pair = Ed25519KeyPair::generate().map_err(generation_failed)?;
                let der = key_pair.to_pkcs8v1().map_err(generation_failed)?;
                Zeroizing::new(der.as_ref().to_vec())
            }
        };
        SigningKey::from_pkcs8_der(algorithm, &pkcs8)
    }

    /// A key from its unencrypted PKCS#8 DER form, which must match `algorithm`.
    pub fn from_pkcs8_der(
        algorithm: SigningAlgorithm,
        der: &[u8],
    ) -> Result<SigningKey, CryptoError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            CryptoError::InvalidKey(format!("not a PKCS#8 {algorithm} private key: {e}"))
        };
        let key_pair = match algorithm {
            SigningAlgorithm::RS256 => KeyPair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            SigningAlgorithm::ES256 => KeyPair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            SigningAlgorithm::EdDSA => {
                KeyPair::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?)
            }
        };
        let members = public_members(&key_pair)?;
        let kid = thumbprint(&members);
        let mut public_jwk = members;
        public_jwk.insert("kid".to_owned(), kid.clone().into());
        public_jwk.insert("alg".to_owned(), algorithm.as_str().into());
        public_jwk.insert("use".to_owned(), "sig".into());
        Ok(SigningKey {
            algorithm,
            key_pair,
            pkcs8: Zeroizing::new(der.to_vec()),
            kid,
            public_jwk: serde_json::Value::Object(public_jwk),
        })
    }

    /// A key from its PEM form (`-----BEGIN PRIVATE KEY-----`, unencrypted PKCS#8), as an
    /// operator receives it from a provider's console (Apple's `.p8` sign-in key).
    pub fn from_pkcs8_pem(
        algorithm: SigningAlgorithm,
        text: &str,
    ) -> Result<SigningKey, CryptoError> {
        let block = pem::parse(text.trim())
            .map_err(|_| CryptoError::InvalidKey("not a PEM block".into()))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(CryptoError::InvalidKey(format!(
                "a PEM \"PRIVATE KEY\" (PKCS#8) block is needed, not \"{}\"",
                block.tag()
            )));
        }
        let der = Zeroizing::new(block.into_contents());
        SigningKey::from_pkcs8_der(algorithm, &der)
    }

    /// The private key as unencrypted PKCS#8 DER, for storage (encrypt it with a
    /// [`crate::FieldCipher`] before it reaches the database).
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The private key as PEM (`-----BEGIN PRIVATE KEY-----`), the form
    /// [`SigningKey::from_pkcs8_pem`] reads.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.to_vec())))
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key, base64url. Derived
    /// from the key itself, so every instance computes the same id with no coordination.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (`kty`, the public members, `kid`, `alg`, `use: "sig"`) for the JWKS
    /// document. Contains no private member.
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public_jwk.clone()
    }

    /// A compact JWS of `claims` with header `{"alg", "typ", "kid"}`.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, CryptoError> {
        self.sign_as(typ, &self.kid, claims)
    }

    /// [`SigningKey::sign`] under a key id someone else gave the key (Apple's sign-in key
    /// id, which its client-secret JWTs must name).
    pub fn sign_as<T: Serialize>(
        &self,
        typ: &str,
        kid: &str,
        claims: &T,
    ) -> Result<String, CryptoError> {
        let claims =
            serde_json::to_vec(claims).map_err(|e| CryptoError::Signing(format!("claims: {e}")))?;
        self.sign_serialized_as(typ, kid, &claims)
    }

    /// [`SigningKey::sign`] of claims already serialised as a JSON object (so the signature
    /// can be computed on another thread than the one that built them).
    pub fn sign_serialized(&self, typ: &str, claims: &[u8]) -> Result<String, CryptoError> {
        self.sign_serialized_as(typ, &self.kid, claims)
    }

    /// A JWS whose header carries this key's public JWK instead of a `kid` (a DPoP proof,
    /// RFC 9449 §4.2): what a client of Gatehouse signs; the server verifies it with
    /// [`verify_embedded_key`].
    pub fn sign_with_jwk<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<String, CryptoError> {
        let mut jwk = self.public_jwk.clone();
        if let Some(members) = jwk.as_object_mut() {
            members.remove("kid");
            members.remove("use");
        }
        let header = serde_json::json!({ "alg": self.algorithm.as_str(), "typ": typ, "jwk": jwk });
        let claims =
            serde_json::to_vec(claims).map_err(|e| CryptoError::Signing(format!("claims: {e}")))?;
        self.sign_with_header(&header, &claims)
    }

    fn sign_serialized_as(
        &self,
        typ: &str,
        kid: &str,
        claims: &[u8],
    ) -> Result<String, CryptoError> {
        self.sign_with_header(&JwsHeader { alg: self.algorithm.as_str(), typ, kid }, claims)
    }

    fn sign_with_header<H: Serialize>(
        &self,
        header: &H,
        claims: &[u8],
    ) -> Result<String, CryptoError> {
        let header =
            serde_json::to_vec(header).map_err(|e| CryptoError::Signing(format!("header: {e}")))?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.signature(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    fn signature(&self, signing_input: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let failed = |_| CryptoError::Signing(format!("{} signature failed", self.algorithm));
        match &self.key_pair {
            KeyPair::Rsa(key_pair) => {
                let mut signature = vec![0u8; key_pair.public_modulus_len()];
                // aws-lc-rs ignores the RNG for PKCS#1 v1.5 (deterministic padding).
                key_pair
                    .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
            KeyPair::Ecdsa(key_pair) => key_pair
                .sign(&SystemRandom::new(), signing_input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(failed),
            KeyPair::Ed25519(key_pair) => Ok(key_pair.sign(signing_input).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// The protected header we emit; field order is irrelevant to verifiers.
#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The key type and public members of the JWK: exactly those RFC 7638 hashes.
fn public_members(key_pair: &KeyPair) -> Result<JsonObject, CryptoError> {
    let b64 = |bytes: &[u8]| serde_json::Value::from(URL_SAFE_NO_PAD.encode(bytes));
    let mut members = JsonObject::new();
    match key_pair {
        KeyPair::Rsa(key_pair) => {
            let public = key_pair.public_key();
            members.insert("kty".to_owned(), "RSA".into());
            members.insert("n".to_owned(), b64(public.modulus().big_endian_without_leading_zero()));
            members
                .insert("e".to_owned(), b64(public.exponent().big_endian_without_leading_zero()));
        }
        KeyPair::Ecdsa(key_pair) => {
            // An uncompressed SEC1 point: 0x04 | x (32 bytes) | y (32 bytes).
            let point = key_pair.public_key().as_ref();
            let (x, y) = match point {
                [0x04, coordinates @ ..] if coordinates.len() == 64 => coordinates.split_at(32),
                _ => {
                    return Err(CryptoError::InvalidKey("unexpected P-256 public key".to_owned()));
                }
            };
            members.insert("kty".to_owned(), "EC".into());
            members.insert("crv".to_owned(), "P-256".into());
            members.insert("x".to_owned(), b64(x));
            members.insert("y".to_owned(), b64(y));
        }
        KeyPair::Ed25519(key_pair) => {
            members.insert("kty".to_owned(), "OKP".into());
            members.insert("crv".to_owned(), "Ed25519".into());
            members.insert("x".to_owned(), b64(key_pair.public_key().as_ref()));
        }
    }
    Ok(members)
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, without whitespace.
/// The JSON is written out by hand rather than through `serde_json::Map`, whose key order
/// depends on a crate feature (`preserve_order`) that another crate could switch on.
fn thumbprint(members: &JsonObject) -> String {
    let member = |name: &str| members.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    let canonical = match member("kty") {
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, member("e"), member("n")),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        ),
        _ => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, member("crv"), member("x")),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests;
