//! Tests of signing keys and verification, round-tripping through the public JWKS.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::json;

use super::*;

const ALL: [SigningAlgorithm; 3] =
    [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA];

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

fn claims() -> Claims {
    Claims { sub: "usr_1".to_owned(), exp: jsonwebtoken::get_current_timestamp() + 600 }
}

/// RSA generation is slow in a debug build, so the tests share one key per algorithm.
fn key(algorithm: SigningAlgorithm) -> &'static SigningKey {
    static KEYS: OnceLock<[SigningKey; 3]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| ALL.map(|alg| SigningKey::generate(alg, 2048).unwrap()));
    &keys[ALL.iter().position(|a| *a == algorithm).unwrap()]
}

fn key_set(keys: &[&SigningKey]) -> PublicKeySet {
    let jwks = json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() });
    PublicKeySet::from_jwks(&jwks).unwrap()
}

fn validation(algorithm: SigningAlgorithm) -> Validation {
    Validation::new(algorithm.jsonwebtoken_algorithm())
}

fn b64_json(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[test]
fn algorithm_names_round_trip_through_serde_fromstr_and_display() {
    for (algorithm, name) in ALL.iter().zip(["RS256", "ES256", "EdDSA"]) {
        assert_eq!(algorithm.to_string(), name);
        assert_eq!(name.parse::<SigningAlgorithm>().unwrap(), *algorithm);
        assert_eq!(serde_json::to_value(algorithm).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<SigningAlgorithm>(json!(name)).unwrap(), *algorithm);
    }
    assert!("none".parse::<SigningAlgorithm>().is_err());
    assert!("rs256".parse::<SigningAlgorithm>().is_err());
}

#[test]
fn sign_and_verify_round_trip_for_every_algorithm() {
    for algorithm in ALL {
        let key = key(algorithm);
        let set = key_set(&[key]);
        let token = key.sign("at+jwt", &claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm.jsonwebtoken_algorithm());
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let verified: Claims = set.verify(&token, Some("at+jwt"), &validation(algorithm)).unwrap();
        assert_eq!(verified.sub, "usr_1");
        // `typ` comparison follows RFC 7515: case-insensitive, optional "application/".
        let _: Claims =
            set.verify(&token, Some("application/AT+JWT"), &validation(algorithm)).unwrap();
        let _: Claims = set.verify(&token, None, &validation(algorithm)).unwrap();
    }
}

#[test]
fn one_set_verifies_tokens_of_all_its_keys() {
    let set = key_set(&ALL.map(key));
    assert_eq!(set.len(), 3);
    for algorithm in ALL {
        let token = key(algorithm).sign("JWT", &claims()).unwrap();
        // The caller's algorithm list is replaced by the key's own.
        let any = validation(SigningAlgorithm::RS256);
        let verified: Claims = set.verify(&token, Some("JWT"), &any).unwrap();
        assert_eq!(verified.sub, "usr_1");
    }
}

#[test]
fn tampered_tokens_are_rejected() {
    for algorithm in ALL {
        let key = key(algorithm);
        let set = key_set(&[key]);
        let token = key.sign("JWT", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = b64_json(&json!({ "sub": "usr_admin", "exp": claims().exp }));
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[0] ^= 1;
        let bad_signature =
            format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(signature));
        for bad in [forged, bad_signature, format!("{}.{}", parts[0], parts[1])] {
            let result = set.verify::<Claims>(&bad, None, &validation(algorithm));
            assert!(matches!(result, Err(CryptoError::Verification(_))), "{algorithm}");
        }
    }
}

#[test]
fn unknown_kid_wrong_typ_and_missing_kid_are_rejected() {
    let signer = key(SigningAlgorithm::EdDSA);
    let other = SigningKey::generate(SigningAlgorithm::EdDSA, 0).unwrap();
    let token = signer.sign("JWT", &claims()).unwrap();
    let check = validation(SigningAlgorithm::EdDSA);

    let unknown = key_set(&[&other]).verify::<Claims>(&token, None, &check);
    assert!(matches!(unknown, Err(CryptoError::Verification(m)) if m == "unknown kid"));

    let set = key_set(&[signer]);
    let wrong_typ = set.verify::<Claims>(&token, Some("at+jwt"), &check);
    assert!(matches!(wrong_typ, Err(CryptoError::Verification(_))));

    let parts: Vec<&str> = token.split('.').collect();
    let no_kid =
        format!("{}.{}.{}", b64_json(&json!({"alg": "EdDSA", "typ": "JWT"})), parts[1], parts[2]);
    let result = set.verify::<Claims>(&no_kid, None, &check);
    assert!(matches!(result, Err(CryptoError::Verification(_))));
}

#[test]
fn alg_none_and_alg_mismatch_are_rejected() {
    let rsa = key(SigningAlgorithm::RS256);
    let set = key_set(&[rsa]);
    let payload = b64_json(&json!({ "sub": "usr_admin", "exp": claims().exp }));
    let none = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT", "kid": rsa.kid()})),
        payload
    );
    let result = set.verify::<Claims>(&none, None, &validation(SigningAlgorithm::RS256));
    assert!(matches!(result, Err(CryptoError::Verification(_))));

    // An ES256 signature presented under the RSA key's kid.
    let ec_token = key(SigningAlgorithm::ES256).sign("JWT", &claims()).unwrap();
    let parts: Vec<&str> = ec_token.split('.').collect();
    let relabelled = format!(
        "{}.{}.{}",
        b64_json(&json!({"alg": "ES256", "typ": "JWT", "kid": rsa.kid()})),
        parts[1],
        parts[2]
    );
    let result = set.verify::<Claims>(&relabelled, None, &validation(SigningAlgorithm::ES256));
    assert!(matches!(result, Err(CryptoError::Verification(m)) if m.contains("alg")));
}

#[test]
fn expired_tokens_and_wrong_audience_are_reported() {
    let key = key(SigningAlgorithm::ES256);
    let set = key_set(&[key]);
    let expired =
        Claims { sub: "usr_1".to_owned(), exp: jsonwebtoken::get_current_timestamp() - 3600 };
    let token = key.sign("JWT", &expired).unwrap();
    let result = set.verify::<Claims>(&token, None, &validation(SigningAlgorithm::ES256));
    assert!(matches!(result, Err(CryptoError::TokenExpired)));

    let token = key.sign("JWT", &json!({"sub": "usr_1", "exp": claims().exp, "aud": "a"})).unwrap();
    let mut wants_b = validation(SigningAlgorithm::ES256);
    wants_b.set_audience(&["b"]);
    let result = set.verify::<Claims>(&token, None, &wants_b);
    assert!(matches!(result, Err(CryptoError::Verification(m)) if m == "wrong audience"));
}

#[test]
fn pkcs8_round_trip_keeps_kid_and_signing_ability() {
    for algorithm in ALL {
        let original = key(algorithm);
        let der = original.pkcs8_der();
        let restored = SigningKey::from_pkcs8_der(algorithm, &der).unwrap();
        assert_eq!(restored.kid(), original.kid());
        assert_eq!(restored.public_jwk(), original.public_jwk());
        assert_eq!(*restored.pkcs8_der(), *der);
        let token = restored.sign("JWT", &claims()).unwrap();
        let _: Claims = key_set(&[original]).verify(&token, None, &validation(algorithm)).unwrap();
    }
}

#[test]
fn a_pem_key_signs_under_the_key_id_it_was_given() {
    let original = key(SigningAlgorithm::ES256);
    let pem = original.pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{}", *pem);
    let restored =
        SigningKey::from_pkcs8_pem(SigningAlgorithm::ES256, &format!("\n{}\n", *pem)).unwrap();
    assert_eq!(restored.kid(), original.kid());
    let token = restored.sign_as("JWT", "ABC123DEFG", &claims()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("ABC123DEFG"));
    let mut jwk = original.public_jwk();
    jwk["kid"] = json!("ABC123DEFG");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let check = validation(SigningAlgorithm::ES256);
    assert!(jsonwebtoken::decode::<Claims>(&token, &decoding, &check).is_ok());
    // Another framing, another algorithm, or no PEM at all: refused.
    let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
    for (algorithm, text) in [
        (SigningAlgorithm::ES256, sec1.as_str()),
        (SigningAlgorithm::RS256, pem.as_str()),
        (SigningAlgorithm::ES256, "not a key"),
    ] {
        let result = SigningKey::from_pkcs8_pem(algorithm, text);
        assert!(matches!(result, Err(CryptoError::InvalidKey(_))), "{algorithm:?} {text}");
    }
}

#[test]
fn wrong_algorithm_for_der_and_bad_rsa_sizes_are_refused() {
    let ec_der = key(SigningAlgorithm::ES256).pkcs8_der();
    for algorithm in [SigningAlgorithm::RS256, SigningAlgorithm::EdDSA] {
        let result = SigningKey::from_pkcs8_der(algorithm, &ec_der);
        assert!(matches!(result, Err(CryptoError::InvalidKey(_))));
    }
    assert!(SigningKey::from_pkcs8_der(SigningAlgorithm::ES256, b"junk").is_err());
    for bits in [1024, 2047, 8192] {
        let result = SigningKey::generate(SigningAlgorithm::RS256, bits);
        assert!(matches!(result, Err(CryptoError::InvalidKey(_))));
    }
}

#[test]
fn public_jwks_have_only_public_members() {
    let expected = [
        vec!["alg", "e", "kid", "kty", "n", "use"],
        vec!["alg", "crv", "kid", "kty", "use", "x", "y"],
        vec!["alg", "crv", "kid", "kty", "use", "x"],
    ];
    for (algorithm, members) in ALL.iter().zip(expected) {
        let jwk = key(*algorithm).public_jwk();
        let mut names: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, members);
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], algorithm.as_str());
    }
    assert_eq!(key(SigningAlgorithm::RS256).public_jwk()["e"], "AQAB");
    assert_eq!(key(SigningAlgorithm::ES256).public_jwk()["crv"], "P-256");
    assert_eq!(key(SigningAlgorithm::EdDSA).public_jwk()["crv"], "Ed25519");
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // Independently: canonical JSON of the required members through a sorted map.
    let jwk = key(SigningAlgorithm::ES256).public_jwk();
    let required: BTreeMap<&str, &str> = ["crv", "kty", "x", "y"]
        .into_iter()
        .map(|name| (name, jwk[name].as_str().unwrap()))
        .collect();
    let canonical = serde_json::to_string(&required).unwrap();
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(key(SigningAlgorithm::ES256).kid(), expected);
    assert_eq!(jwk["kid"], expected);

    // RFC 7638 section 3.1's own example key and thumbprint.
    let mut rfc_members = JsonObject::new();
    rfc_members.insert("kty".to_owned(), "RSA".into());
    rfc_members.insert("e".to_owned(), "AQAB".into());
    rfc_members.insert(
        "n".to_owned(),
        concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B",
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F",
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v",
            "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        )
        .into(),
    );
    assert_eq!(thumbprint(&rfc_members), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[test]
fn jwks_parsing_skips_foreign_keys_and_refuses_broken_ones() {
    let ed = key(SigningAlgorithm::EdDSA).public_jwk();
    let mut encryption_key = ed.clone();
    encryption_key["use"] = json!("enc");
    encryption_key["kid"] = json!("enc-1");
    let mut rs384 = key(SigningAlgorithm::RS256).public_jwk();
    rs384["alg"] = json!("RS384");
    let mut no_alg = key(SigningAlgorithm::ES256).public_jwk();
    no_alg.as_object_mut().unwrap().remove("alg");
    let jwks =
        json!({ "keys": [ed, encryption_key, rs384, no_alg, {"kty": "oct", "k": "c2VjcmV0"}] });
    let set = PublicKeySet::from_jwks(&jwks).unwrap();
    assert_eq!(set.len(), 2, "{set:?}");
    // The ES256 key without "alg" was inferred and works.
    let token = key(SigningAlgorithm::ES256).sign("JWT", &claims()).unwrap();
    let _: Claims = set.verify(&token, None, &validation(SigningAlgorithm::ES256)).unwrap();

    let mut mismatched = key(SigningAlgorithm::EdDSA).public_jwk();
    mismatched["alg"] = json!("ES256");
    let mut missing_member = key(SigningAlgorithm::RS256).public_jwk();
    missing_member.as_object_mut().unwrap().remove("n");
    let duplicate = key(SigningAlgorithm::EdDSA).public_jwk();
    for bad in [
        json!({ "keys": [mismatched] }),
        json!({ "keys": [missing_member] }),
        json!({ "keys": [duplicate.clone(), duplicate] }),
        json!({ "no_keys": [] }),
        json!([]),
    ] {
        assert!(matches!(PublicKeySet::from_jwks(&bad), Err(CryptoError::InvalidKey(_))), "{bad}");
    }
    assert!(PublicKeySet::from_jwks(&json!({"keys": []})).unwrap().is_empty());
}

#[test]
fn debug_redacts_the_private_key() {
    let key = key(SigningAlgorithm::EdDSA);
    let shown = format!("{key:?}");
    assert!(shown.contains("[redacted]"));
    assert!(shown.contains(key.kid()));
    assert!(!shown.contains(&URL_SAFE_NO_PAD.encode(key.pkcs8_der().as_slice())));
}

/// A DPoP-style proof: the header carries the public JWK, the signature is that key's.
#[test]
fn a_self_keyed_jws_verifies_with_its_own_key_and_names_its_thumbprint() {
    for algorithm in ALL {
        let key = key(algorithm);
        let claims = json!({ "jti": "j1", "htm": "POST", "iat": 1 });
        let token = key.sign_with_jwk("dpop+jwt", &claims).unwrap();
        let verified = verify_embedded_key(&token, "dpop+jwt").unwrap();
        // Our kids are RFC 7638 thumbprints, so the two must agree.
        assert_eq!(verified.thumbprint, key.kid(), "{algorithm}");
        assert_eq!(verified.claims["jti"], "j1");
        // Another typ, a tampered payload, a header naming another key: refused.
        assert!(verify_embedded_key(&token, "at+jwt").is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let other_claims = URL_SAFE_NO_PAD.encode(br#"{"jti":"j2"}"#);
        parts[1] = &other_claims;
        assert!(verify_embedded_key(&parts.join("."), "dpop+jwt").is_err(), "{algorithm}");
    }
    let signer = key(SigningAlgorithm::ES256);
    let other = key(SigningAlgorithm::EdDSA);
    let forged_header = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": other.public_jwk()}))
            .unwrap(),
    );
    let token = signer.sign_with_jwk("dpop+jwt", &json!({"jti": "x"})).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[0] = &forged_header;
    assert!(verify_embedded_key(&parts.join("."), "dpop+jwt").is_err());
}

#[test]
fn a_self_keyed_jws_must_not_carry_a_private_or_shared_key() {
    let key = key(SigningAlgorithm::ES256);
    let token = key.sign_with_jwk("dpop+jwt", &json!({"jti": "x"})).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let mut jwk = key.public_jwk();
    jwk["d"] = json!("AAAA");
    let header = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk})).unwrap(),
    );
    let error = verify_embedded_key(&format!("{header}.{rest}"), "dpop+jwt").unwrap_err();
    assert!(error.to_string().contains("not a public key"), "{error}");
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            typ: Some("dpop+jwt".into()),
            jwk: Some(serde_json::from_value(json!({"kty": "oct", "k": "c2VjcmV0"})).unwrap()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &json!({"jti": "x"}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(verify_embedded_key(&hmac, "dpop+jwt").is_err());
    assert!(verify_embedded_key(&"a".repeat(MAX_EMBEDDED_JWS_LENGTH + 1), "dpop+jwt").is_err());
}
