//! Webhook signing secrets and signatures, per the Standard Webhooks specification: a secret is
//! `whsec_` + the base64 of its random bytes; a message is signed with HMAC-SHA256 (the `hmac`
//! and `sha2` crates) over `"{webhook-id}.{webhook-timestamp}.{body}"`, and the header value is
//! `v1,<base64 signature>`, several space-separated while an old secret still signs. The
//! official `standardwebhooks` libraries verify exactly this.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::CryptoError;

const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A webhook signing secret. `Debug` never prints it.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    pub fn generate() -> WebhookSecret {
        WebhookSecret(Zeroizing::new(crate::random_bytes::<SECRET_BYTES>().to_vec()))
    }

    /// Reads `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, CryptoError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(CryptoError::InvalidKey(
            "webhook secret: whsec_ and the base64 of 24 to 64 bytes".into(),
        ))?;
        let bytes = STANDARD.decode(encoded).map_err(|_| {
            CryptoError::InvalidKey(
                "webhook secret: whsec_ and the base64 of 24 to 64 bytes".into(),
            )
        })?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(CryptoError::InvalidKey(
                "webhook secret: whsec_ and the base64 of 24 to 64 bytes".into(),
            ));
        }
        Ok(WebhookSecret(Zeroizing::new(bytes)))
    }

    /// `whsec_<base64>`: what the endpoint's owner configures in their receiver.
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(self.0.as_slice())))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.as_slice()) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn webhook_signature(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets.iter().map(|secret| secret.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries' test suites.
    #[test]
    fn signs_like_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_rotation_signs_twice() {
        let secret = WebhookSecret::generate();
        let again = WebhookSecret::parse(&secret.expose()).unwrap();
        assert_eq!(secret.sign("m", 1, b"x"), again.sign("m", 1, b"x"));
        assert!(secret.expose().starts_with("whsec_"));
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
        let other = WebhookSecret::generate();
        let header = webhook_signature(&[secret.clone(), other], "m", 1, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.starts_with(&secret.sign("m", 1, b"x")));
        assert!(WebhookSecret::parse("whsec_short").is_err());
        assert!(WebhookSecret::parse("nope").is_err());
    }
}
