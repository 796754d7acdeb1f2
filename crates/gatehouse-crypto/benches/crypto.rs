//! Benchmarks of the crypto layer's hot paths: password hashing, field encryption, keyed
//! digests and JWS signing/verification.

// A benchmark that cannot set up has nothing to measure: failing loudly is right here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_crypto::jsonwebtoken::Validation;
use gatehouse_crypto::{
    Argon2Settings, Digester, FieldCipher, HashingPool, MasterKey, PasswordHasher, Pepper,
    PublicKeySet, SigningAlgorithm, SigningKey,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

fn hasher(settings: Argon2Settings) -> PasswordHasher {
    PasswordHasher::new(settings, Pepper::from_master(&MasterKey::generate(), 1), vec![]).unwrap()
}

fn password() -> SecretString {
    SecretString::from("correct horse battery staple".to_owned())
}

fn argon2id(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    // One production hash takes tens of milliseconds; ten samples keep the run short.
    group.sample_size(10);
    let production = hasher(Argon2Settings::default());
    group.bench_function("hash m=65536,t=3,p=4 (default)", |b| {
        b.iter(|| production.hash(black_box(b"correct horse battery staple")).unwrap())
    });
    // The same hash through the pool, as the server makes it: a dedicated worker thread that
    // keeps its Argon2 memory between hashes, answering an async caller.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = HashingPool::new(hasher(Argon2Settings::default()), 1);
    group.bench_function("pool hash m=65536,t=3,p=4 (default)", |b| {
        b.iter(|| runtime.block_on(pool.hash(password())).unwrap())
    });
    // OWASP's minimum (19 MiB, 2 passes, 1 lane), the setting of the sign-in load benchmark.
    let owasp = Argon2Settings { memory_kib: 19456, iterations: 2, parallelism: 1 };
    let direct = hasher(owasp.clone());
    group.bench_function("hash m=19456,t=2,p=1", |b| {
        b.iter(|| direct.hash(black_box(b"correct horse battery staple")).unwrap())
    });
    let pool = HashingPool::new(hasher(owasp), 1);
    group.bench_function("pool hash m=19456,t=2,p=1", |b| {
        b.iter(|| runtime.block_on(pool.hash(password())).unwrap())
    });
    let small = hasher(Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 });
    group.bench_function("hash m=1024,t=1,p=1 (test)", |b| {
        b.iter(|| small.hash(black_box(b"correct horse battery staple")).unwrap())
    });
    group.finish();
}

fn field_encryption(c: &mut Criterion) {
    let cipher = FieldCipher::new(&MasterKey::generate(), &[], "bench");
    let field = [0x5au8; 64];
    let sealed = cipher.seal(b"usr_1/field", &field).unwrap();
    c.bench_function("aead seal 64 B", |b| {
        b.iter(|| cipher.seal(black_box(b"usr_1/field"), black_box(&field)).unwrap())
    });
    c.bench_function("aead open 64 B", |b| {
        b.iter(|| cipher.open(black_box(b"usr_1/field"), black_box(&sealed)).unwrap())
    });
}

fn keyed_digest(c: &mut Criterion) {
    let digester = Digester::new(&MasterKey::generate(), "bench");
    let token = [0x42u8; 32];
    c.bench_function("hmac-sha256 digest 32 B", |b| b.iter(|| digester.digest(black_box(&token))));
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    scope: String,
}

fn jws(c: &mut Criterion) {
    let now = gatehouse_crypto::jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        iss: "https://id.example.com".to_owned(),
        sub: "usr_0190e1b2c3d47e8f9a0b1c2d3e4f5a6b".to_owned(),
        aud: "app_0190e1b2c3d47e8f9a0b1c2d3e4f5a6c".to_owned(),
        exp: now + 3600,
        iat: now,
        scope: "openid profile email".to_owned(),
    };
    for algorithm in [SigningAlgorithm::RS256, SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
        let key = SigningKey::generate(algorithm, 2048).unwrap();
        let keys =
            PublicKeySet::from_jwks(&serde_json::json!({ "keys": [key.public_jwk()] })).unwrap();
        let mut validation = Validation::new(algorithm.jsonwebtoken_algorithm());
        validation.set_audience(&[&claims.aud]);
        let token = key.sign("at+jwt", &claims).unwrap();
        c.bench_function(&format!("jws sign {algorithm}"), |b| {
            b.iter(|| key.sign("at+jwt", black_box(&claims)).unwrap())
        });
        c.bench_function(&format!("jws verify {algorithm}"), |b| {
            b.iter(|| {
                keys.verify::<Claims>(black_box(&token), Some("at+jwt"), &validation).unwrap()
            })
        });
    }
}

criterion_group!(benches, argon2id, field_encryption, keyed_digest, jws);
criterion_main!(benches);
