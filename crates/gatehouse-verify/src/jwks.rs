//! A published JWK Set read into verification keys, each bound to the algorithms it may
//! verify, and the `Cache-Control` rules that say how long it stays fresh.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// One verification key and the algorithms it may be used with (one when the JWK names its
/// `alg`; the allowed RSA algorithms for an RSA key that does not).
pub(crate) struct VerifyingKey {
    pub algorithms: Vec<Algorithm>,
    pub decoding_key: DecodingKey,
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    pub keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Reads `{"keys": [...]}`. Keys that cannot verify access tokens are skipped: `use`
    /// other than `sig`, no `kid`, symmetric (`oct`), an algorithm outside `allowed`, a key
    /// type or curve no allowed algorithm uses, members jsonwebtoken cannot read. A document
    /// without a `keys` array, with two keys sharing a `kid`, or with no usable key at all is
    /// refused as a whole, so a broken publication never replaces a working set.
    pub fn from_jwks(document: &Value, allowed: &[Algorithm]) -> Result<KeySet, String> {
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS is an object with a \"keys\" array")?;
        let mut keys = HashMap::with_capacity(entries.len());
        for entry in entries {
            let Some((kid, key)) = verifying_key(entry, allowed) else {
                continue;
            };
            if keys.insert(kid.clone(), key).is_some() {
                return Err(format!("two keys share the kid {kid:?}"));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS has no key usable with the allowed algorithms".to_owned());
        }
        Ok(KeySet { keys })
    }
}

fn verifying_key(entry: &Value, allowed: &[Algorithm]) -> Option<(String, VerifyingKey)> {
    let member = |name: &str| entry.get(name).and_then(Value::as_str);
    if member("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let kid = member("kid")?.to_owned();
    let kty = member("kty")?;
    let crv = member("crv");
    // The algorithms this key type and curve can verify, narrowed to the allow-list and, when
    // the JWK names one, to its `alg`.
    let family: &[Algorithm] = match (kty, crv) {
        ("RSA", _) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        ("EC", Some("P-256")) => &[Algorithm::ES256],
        ("EC", Some("P-384")) => &[Algorithm::ES384],
        ("OKP", Some("Ed25519")) => &[Algorithm::EdDSA],
        _ => return None,
    };
    let named = match member("alg") {
        Some(alg) => Some(alg.parse::<Algorithm>().ok()?),
        None => None,
    };
    let algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|algorithm| allowed.contains(algorithm))
        .filter(|algorithm| named.is_none_or(|named| named == *algorithm))
        .collect();
    if algorithms.is_empty() {
        return None;
    }
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    let decoding_key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, VerifyingKey { algorithms, decoding_key }))
}

/// How long a fetched document may be used, from its `Cache-Control` header: `max-age`
/// (`no-cache`/`no-store` mean zero), `default` without one, always within `[min, max]` so a
/// misconfigured issuer can neither make every request fetch nor pin a key set for ever.
pub(crate) fn freshness(
    cache_control: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Duration {
    let mut lifetime = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            lifetime = Some(Duration::ZERO);
            break;
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Ok(seconds) = value.trim_matches('"').parse::<u64>()
        {
            lifetime = Some(Duration::from_secs(seconds));
        }
    }
    lifetime.unwrap_or(default).clamp(min, max.max(min))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn ec(kid: &str) -> Value {
        json!({ "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": kid, "use": "sig" })
    }

    const ALL: &[Algorithm] = &[
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    #[test]
    fn keys_are_bound_to_their_algorithms_and_foreign_keys_skipped() {
        let document = json!({ "keys": [
            ec("ec"),
            { "kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "ed", "alg": "EdDSA" },
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256" },
            { "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "enc", "use": "enc" },
            { "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y },
            { "kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": "liar", "alg": "RS256" },
            { "kty": "OKP", "crv": "X25519", "x": ED_X, "kid": "ecdh" },
            { "kty": "EC", "crv": "P-256", "x": "broken", "y": EC_Y, "kid": "broken" },
        ]});
        let set = KeySet::from_jwks(&document, ALL).unwrap();
        let mut kids: Vec<&str> = set.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec", "ed"]);
        assert_eq!(set.keys["ec"].algorithms, [Algorithm::ES256]);
        assert_eq!(set.keys["ed"].algorithms, [Algorithm::EdDSA]);

        // The allow-list narrows what a key may verify, down to nothing.
        let only_ed = KeySet::from_jwks(&document, &[Algorithm::EdDSA]).unwrap();
        assert_eq!(only_ed.keys.len(), 1);
    }

    #[test]
    fn broken_documents_are_refused_whole() {
        for document in [
            json!({}),
            json!({ "keys": {} }),
            json!({ "keys": [] }),
            json!({ "keys": [ec("same"), ec("same")] }),
            json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" }] }),
        ] {
            assert!(KeySet::from_jwks(&document, ALL).is_err(), "{document}");
        }
    }

    #[test]
    fn freshness_follows_cache_control_within_bounds() {
        let check = |header: Option<&str>, expected: u64| {
            let seconds = |s| Duration::from_secs(s);
            assert_eq!(
                freshness(header, seconds(300), seconds(10), seconds(3600)),
                seconds(expected),
                "{header:?}"
            );
        };
        check(None, 300);
        check(Some("public, max-age=120"), 120);
        check(Some("max-age=\"60\""), 60);
        check(Some("MAX-AGE=5"), 10);
        check(Some("max-age=86400"), 3600);
        check(Some("max-age=120, no-cache"), 10);
        check(Some("no-store"), 10);
        check(Some("max-age=soon"), 300);
    }
}
