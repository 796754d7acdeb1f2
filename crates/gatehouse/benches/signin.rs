//! Sign-in under load, against the real application on embedded SQLite with the production
//! Argon2id parameters (m=64 MiB, t=3, p=4):
//! - throughput as a fraction of the Argon2id ceiling (hashes per second through the same
//!   hashing pool with every core busy, measured in this run, so machine noise cancels out);
//! - p50/p99 latency of `/healthz` and of `GET /v1/me` (JWT verification + session check)
//!   while sign-ins saturate the hashing pool — the pool must not starve other requests;
//! - peak RSS of the process (bounded by permits × m_cost plus the base).
//!
//! `cargo bench -p gatehouse --bench signin` (optional: `SIGNIN_BENCH_SECONDS`, `SIGNIN_BENCH_CLIENTS`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse::app;
use gatehouse::config::Config;
use gatehouse_crypto::{Argon2Settings, HashingPool, MasterKey, PasswordHasher, Pepper};

const PASSWORD: &str = "Quasar-trail-mix-81!";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// One production-parameter hash at a time through the server's own hashing pool (so with the
/// same reused worker memory as sign-in), timed on this machine, now.
async fn single_hash_seconds(master: &MasterKey) -> f64 {
    let pool = HashingPool::new(hasher(master), 1);
    let _ = pool.hash(PASSWORD.to_owned().into()).await.unwrap();
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        pool.hash(PASSWORD.to_owned().into()).await.unwrap();
    }
    started.elapsed().as_secs_f64() / f64::from(rounds)
}

/// Hashes per second with every core hashing at once, through the same pool: the real ceiling,
/// since parallel Argon2id runs share memory bandwidth and are slower than one alone.
async fn parallel_hashes_per_second(master: &MasterKey, threads: usize) -> f64 {
    let pool = HashingPool::new(hasher(master), threads);
    let warm: Vec<_> = (0..threads).map(|_| pool.hash(PASSWORD.to_owned().into())).collect();
    for hash in warm {
        hash.await.unwrap();
    }
    let jobs = threads * 4;
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let pool = pool.clone();
        running.spawn(async move { pool.hash(PASSWORD.to_owned().into()).await.unwrap() });
    }
    while running.join_next().await.is_some() {}
    jobs as f64 / started.elapsed().as_secs_f64()
}

fn hasher(master: &MasterKey) -> PasswordHasher {
    PasswordHasher::new(Argon2Settings::default(), Pepper::from_master(master, 1), Vec::new())
        .unwrap()
}

async fn probe(
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut request = client.get(&url);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples
}

#[tokio::main]
async fn main() {
    let seconds = env_number("SIGNIN_BENCH_SECONDS", 10);
    let clients = env_number("SIGNIN_BENCH_CLIENTS", 16);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let directory = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();

    let hash_seconds = single_hash_seconds(&master).await;
    let ceiling = parallel_hashes_per_second(&master, cores).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = [
        ("GATEHOUSE_DATA_DIR", directory.path().display().to_string()),
        ("GATEHOUSE_MASTER_KEY", master.encode()),
        ("GATEHOUSE_ISSUER", base.clone()),
        ("GATEHOUSE_RATE_LIMIT_ENABLED", "false".to_owned()),
        ("GATEHOUSE_LOG_LEVEL", "warn".to_owned()),
    ];
    let config =
        Config::load(None, settings.iter().map(|(k, v)| (k.to_string(), v.clone()))).unwrap();
    let application = app::build(config).await.unwrap();
    let permits = application.hashing.permits();
    tokio::spawn(async move {
        gatehouse::server::serve(application, listener, std::future::pending()).await.unwrap();
    });

    let client = reqwest::Client::new();
    let signed_up: serde_json::Value = client
        .post(format!("{base}/v1/auth/sign-up"))
        .json(&serde_json::json!({ "email": "bench@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = signed_up["tokens"]["access_token"].as_str().unwrap().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicU64::new(0));
    let mut sign_in_latencies = Vec::new();
    let mut workers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..clients {
        let (client, url, stop, successes) =
            (client.clone(), format!("{base}/v1/auth/sign-in"), stop.clone(), successes.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let body = serde_json::json!({ "email": "bench@example.com", "password": PASSWORD });
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let response = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200);
                latencies.push(sent.elapsed());
                successes.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        });
    }
    let health = tokio::spawn(probe(client.clone(), format!("{base}/healthz"), None, stop.clone()));
    let me = tokio::spawn(probe(
        client.clone(),
        format!("{base}/v1/me"),
        Some(access_token),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(latencies) = workers.join_next().await {
        sign_in_latencies.extend(latencies.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut health = health.await.unwrap();
    let mut me = me.await.unwrap();
    let throughput = successes.load(Ordering::Relaxed) as f64 / elapsed;

    println!(
        "sign-in benchmark ({seconds} s, {clients} clients, {cores} cores, {permits} hashing permits)"
    );
    println!("  one Argon2id hash (m=64 MiB, t=3, p=4): {:.1} ms", hash_seconds * 1000.0);
    println!(
        "  cores / single-hash time:               {:.2} hashes/s",
        cores as f64 / hash_seconds
    );
    println!("  Argon2id ceiling ({cores} threads at once):  {ceiling:.2} hashes/s");
    println!(
        "  sign-in throughput:                     {throughput:.2} sign-ins/s = {:.0} % of the ceiling",
        100.0 * throughput / ceiling
    );
    println!(
        "  sign-in latency p50 / p99:              {:.0} / {:.0} ms",
        percentile(&mut sign_in_latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut sign_in_latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "  /healthz under load p50 / p99:          {:.2} / {:.2} ms ({} samples)",
        percentile(&mut health, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut health, 0.99).as_secs_f64() * 1000.0,
        health.len()
    );
    println!(
        "  GET /v1/me (JWT + session) p50 / p99:   {:.2} / {:.2} ms ({} samples)",
        percentile(&mut me, 0.5).as_secs_f64() * 1000.0,
        percentile(&mut me, 0.99).as_secs_f64() * 1000.0,
        me.len()
    );
    println!(
        "  peak RSS:                               {:.0} MiB (pool bound: {permits} × 64 MiB + base)",
        peak_rss_mib()
    );
}
