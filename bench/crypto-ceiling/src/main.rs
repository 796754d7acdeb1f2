//! Crypto ceilings for the benchmark harness, measured on all cores with the crates Gatehouse
//! uses: RS256 (RSA-2048 PKCS#1 v1.5 SHA-256), ES256 (P-256, fixed-size signature) and EdDSA
//! (Ed25519) signatures per second with aws-lc-rs, and Argon2id hashes per second with argon2
//! 0.5 for each given parameter set.
//!
//! Usage: `gatehouse-bench-crypto-ceiling [--seconds S] [--threads N] [--signatures true|false]
//! [--algorithms RS256,ES256,EdDSA] [--argon2 M,T,P]...` (M in KiB; `--signatures false`
//! measures Argon2id only, so the harness can measure it right beside a sign-in scenario;
//! `--algorithms RS256` measures RS256 signatures only, beside a refresh or a code flow). Prints one JSON object on stdout:
//! `{"threads":N,"signs_per_second":{"RS256":..,"ES256":..,"EdDSA":..},
//!   "argon2id_per_second":{"M/T/P":..}}`.
//!
//! `gatehouse-bench-crypto-ceiling --dpop-proofs N --htm METHOD --htu URL --iat T` instead
//! prints N DPoP proofs (RFC 9449), one per line, all of one fresh P-256 key, each with its own
//! random `jti`: what the DPoP scenarios of bench/run send, one per request (a proof is
//! single-use). The JWS is assembled as Gatehouse's own signer does it (base64url and
//! concatenation, RFC 7515 §7.1); the signature is aws-lc-rs's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

/// The bytes signed: the size of a typical JWT signing input (header.payload, base64url).
const MESSAGE: &[u8] = &[b'x'; 420];

/// Runs `make()`'s operation on `threads` threads for `seconds` (each thread makes its own,
/// so it can keep per-thread state such as a reused Argon2 buffer); answers operations per
/// second.
fn per_second<M, W>(threads: usize, seconds: f64, make: M) -> f64
where
    M: Fn() -> W + Send + Sync + 'static,
    W: FnMut(),
{
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (make, stop, done) = (make.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut work = make();
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    work();
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        let _ = handle.join();
    }
    // Count the elapsed time until the last in-flight operation finished (matters for slow
    // operations such as Argon2id with large parameters).
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Prints `count` DPoP proofs for `htm` `htu` issued at `iat`, one per line.
fn dpop_proofs(count: usize, htm: &str, htu: &str, iat: i64) -> Result<(), Box<dyn std::error::Error>> {
    use aws_lc_rs::rand::SecureRandom as _;
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::io::Write as _;

    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "ec keygen")?;
    // The uncompressed point: 0x04, then x and y (32 bytes each).
    let point = key.public_key().as_ref();
    if point.len() != 65 {
        return Err("unexpected P-256 public key encoding".into());
    }
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    );
    let header = URL_SAFE_NO_PAD.encode(header);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let mut jti = [0u8; 16];
        rng.fill(&mut jti).map_err(|_| "rng")?;
        let claims = format!(
            r#"{{"jti":"{}","htm":"{htm}","htu":"{htu}","iat":{iat}}}"#,
            URL_SAFE_NO_PAD.encode(jti)
        );
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let signature = key.sign(&rng, input.as_bytes()).map_err(|_| "ecdsa sign")?;
        writeln!(out, "{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))?;
    }
    out.flush()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seconds = 3.0_f64;
    let mut threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut argon2_params: Vec<(u32, u32, u32)> = Vec::new();
    let mut signatures = true;
    let mut algorithms = vec!["RS256".to_owned(), "ES256".to_owned(), "EdDSA".to_owned()];
    let (mut proofs, mut htm, mut htu, mut iat) = (None, String::new(), String::new(), 0_i64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--dpop-proofs" => proofs = Some(value.parse::<usize>()?),
            "--htm" => htm = value,
            "--htu" => htu = value,
            "--iat" => iat = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            "--threads" => threads = value.parse()?,
            "--signatures" => signatures = value.parse()?,
            "--algorithms" => algorithms = value.split(',').map(str::to_owned).collect(),
            "--argon2" => {
                let parts: Vec<u32> = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
                if parts.len() != 3 {
                    return Err("--argon2 takes M,T,P".into());
                }
                argon2_params.push((parts[0], parts[1], parts[2]));
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if let Some(count) = proofs {
        return dpop_proofs(count, &htm, &htu, iat);
    }

    let mut signs = Vec::new();
    if signatures {
        let rsa = Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "rsa keygen")?);
        let ec = Arc::new(
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "ec keygen")?,
        );
        let ed = Arc::new(Ed25519KeyPair::generate().map_err(|_| "ed25519 keygen")?);

        let measure = |name: &str| algorithms.iter().any(|wanted| wanted == name);
        if measure("RS256") {
            let rs256 = per_second(threads, seconds, move || {
                let rsa = rsa.clone();
                move || {
                    let rng = SystemRandom::new();
                    let mut signature = vec![0u8; rsa.public_modulus_len()];
                    let _ = rsa.sign(&RSA_PKCS1_SHA256, &rng, MESSAGE, &mut signature);
                    std::hint::black_box(&signature);
                }
            });
            signs.push(format!("\"RS256\":{rs256:.1}"));
        }
        if measure("ES256") {
            let es256 = per_second(threads, seconds, move || {
                let ec = ec.clone();
                let rng = SystemRandom::new();
                move || {
                    std::hint::black_box(ec.sign(&rng, MESSAGE).ok());
                }
            });
            signs.push(format!("\"ES256\":{es256:.1}"));
        }
        if measure("EdDSA") {
            let eddsa = per_second(threads, seconds, move || {
                let ed = ed.clone();
                move || {
                    std::hint::black_box(ed.sign(MESSAGE));
                }
            });
            signs.push(format!("\"EdDSA\":{eddsa:.1}"));
        }
    }

    let mut argon2_results = Vec::new();
    for (m, t, p) in argon2_params {
        let params = argon2::Params::new(m, t, p, Some(32)).map_err(|e| e.to_string())?;
        // One buffer per thread, allocated once: the cost of Argon2id itself, not of mapping
        // and zeroing m KiB for every hash.
        let rate = per_second(threads, seconds, move || {
            let hasher = argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                params.clone(),
            );
            let mut blocks = vec![argon2::Block::default(); params.block_count()];
            move || {
                let mut out = [0u8; 32];
                let _ = hasher.hash_password_into_with_memory(
                    b"correct horse battery staple",
                    b"0123456789abcdef",
                    &mut out,
                    &mut blocks,
                );
                std::hint::black_box(&out);
            }
        });
        argon2_results.push(format!("\"{m}/{t}/{p}\":{rate:.2}"));
    }

    println!(
        "{{\"threads\":{threads},\"seconds\":{seconds},\"signs_per_second\":{{{}}},\"argon2id_per_second\":{{{}}}}}",
        signs.join(","),
        argon2_results.join(",")
    );
    Ok(())
}
