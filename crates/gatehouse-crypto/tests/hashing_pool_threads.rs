//! Creating and dropping hashing pools leaves no threads behind. Its own test binary, so that
//! no other test starts or ends threads while it counts them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use gatehouse_crypto::{Argon2Settings, HashingPool, MasterKey, PasswordHasher, Pepper};
use secrecy::SecretString;

/// `Threads:` of /proc/self/status: the threads of this process.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// Threads of this process named like pool workers (the kernel keeps 15 bytes of a name).
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("gatehouse-argon"))
        .count()
}

/// Polls (bounded) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn creating_and_dropping_pools_does_not_leak_threads() {
    // A current-thread runtime starts no threads of its own.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let before = threads();
    assert_eq!(worker_threads(), 0);
    let master = MasterKey::generate();
    let settings = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
    let pools: Vec<HashingPool> = (0..20)
        .map(|_| {
            let hasher =
                PasswordHasher::new(settings.clone(), Pepper::from_master(&master, 1), vec![])
                    .unwrap();
            HashingPool::new(hasher, 2)
        })
        .collect();
    assert_eq!(threads(), before + 40, "two workers per pool");
    // Each thread names itself once running.
    wait_for("the workers to be named", || worker_threads() == 40);
    runtime.block_on(async {
        for pool in &pools {
            let phc = pool.hash(SecretString::from("pw".to_owned())).await.unwrap();
            assert!(pool.verify(SecretString::from("pw".to_owned()), phc).await.unwrap());
        }
    });
    drop(pools);
    wait_for("the workers to exit", || worker_threads() == 0);
    wait_for("the thread count to return", || threads() <= before);
}
