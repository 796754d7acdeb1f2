//! Property tests of JWS/JWT verification, the parser every bearer token, ID token hint and
//! client assertion goes through: whatever string arrives, verification answers an error and
//! never panics; a token we signed verifies to exactly the claims we signed; changing any one
//! character of a signed token makes it fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use gatehouse_crypto::{PublicKeySet, SigningAlgorithm, SigningKey};
use jsonwebtoken::Validation;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    scope: Vec<String>,
}

fn keys() -> &'static (SigningKey, SigningKey, PublicKeySet) {
    static KEYS: OnceLock<(SigningKey, SigningKey, PublicKeySet)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA, 0).unwrap();
        let es = SigningKey::generate(SigningAlgorithm::ES256, 0).unwrap();
        let jwks = serde_json::json!({ "keys": [ed.public_jwk(), es.public_jwk()] });
        let set = PublicKeySet::from_jwks(&jwks).unwrap();
        (ed, es, set)
    })
}

fn validation() -> Validation {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.validate_aud = false;
    validation
}

fn far_future() -> u64 {
    jsonwebtoken::get_current_timestamp() + 3600
}

/// Compact-serialisation-shaped strings: base64url-ish segments joined by dots, plus noise.
fn compact_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..6).prop_map(|parts| parts.join(".")),
        "[ -~]{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_verify_and_never_panic(token in compact_like()) {
        let (_, _, set) = keys();
        let result = set.verify::<Claims>(&token, None, &validation());
        prop_assert!(result.is_err());
        let result = set.verify::<serde_json::Value>(&token, Some("at+jwt"), &validation());
        prop_assert!(result.is_err());
    }

    #[test]
    fn signed_claims_round_trip(
        sub in "\\PC{0,40}",
        scope in proptest::collection::vec("[a-z:_]{1,12}", 0..5),
        use_ec in any::<bool>(),
    ) {
        let (ed, es, set) = keys();
        let claims = Claims { sub, exp: far_future(), scope };
        let signer = if use_ec { es } else { ed };
        let token = signer.sign("at+jwt", &claims).unwrap();
        let verified: Claims = set.verify(&token, Some("at+jwt"), &validation()).unwrap();
        prop_assert_eq!(verified, claims);
    }

    #[test]
    fn any_single_character_change_is_refused(
        position in any::<proptest::sample::Index>(),
        replacement in proptest::char::range('!', '~'),
    ) {
        let (ed, _, set) = keys();
        let claims = Claims { sub: "usr_1".into(), exp: far_future(), scope: vec!["openid".into()] };
        let token = ed.sign("JWT", &claims).unwrap();
        let index = position.index(token.len());
        let original = token.as_bytes()[index] as char;
        prop_assume!(original != replacement);
        let mut tampered = token.clone();
        tampered.replace_range(index..index + 1, &replacement.to_string());
        // A change that decodes to the same bytes (base64url's unused low bits of the last
        // character) may still verify, but then it yields exactly the signed claims.
        if let Ok(verified) = set.verify::<Claims>(&tampered, None, &validation()) {
            prop_assert_eq!(verified, claims);
        }
    }
}
