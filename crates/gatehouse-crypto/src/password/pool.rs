//! The bounded blocking pool that runs Argon2 off the async runtime with a cap on concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Semaphore;

use super::PasswordHasher;
use crate::CryptoError;

/// Runs password hashing on tokio's blocking threads, at most `permits` at a time.
///
/// Each job first takes a semaphore permit, then runs on `spawn_blocking` holding it. So at
/// most `permits` Argon2 computations (and `permits × memory_kib` of memory) exist at once,
/// however many sign-ins arrive; the rest wait asynchronously without holding a thread.
/// The permit moves into the blocking closure, so a caller that gives up (a dropped request)
/// does not free it before the computation it started has finished.
#[derive(Clone, Debug)]
pub struct HashingPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hasher: PasswordHasher,
    semaphore: Arc<Semaphore>,
    permits: usize,
    /// Computations running right now, counted inside the blocking closure; with `peak`
    /// it lets tests observe the real concurrency rather than the semaphore's view of it.
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl HashingPool {
    /// A pool around `hasher` allowing `permits` concurrent computations (0 is raised to 1).
    pub fn new(hasher: PasswordHasher, permits: usize) -> HashingPool {
        let permits = permits.clamp(1, Semaphore::MAX_PERMITS);
        HashingPool {
            inner: Arc::new(Inner {
                hasher,
                semaphore: Arc::new(Semaphore::new(permits)),
                permits,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// One permit per available CPU: more would only queue on the cores and multiply the
    /// memory in use.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// See [`PasswordHasher::hash`].
    pub async fn hash(&self, password: SecretString) -> Result<String, CryptoError> {
        self.run(move |hasher| hasher.hash(password.expose_secret().as_bytes())).await?
    }

    /// See [`PasswordHasher::verify`].
    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, CryptoError> {
        self.run(move |hasher| hasher.verify(password.expose_secret().as_bytes(), &phc)).await?
    }

    /// Makes the dummy hash on the blocking pool (call once after start-up).
    pub async fn warm_up(&self) {
        let _ = self.run(|hasher| hasher.warm_up()).await;
    }

    /// See [`PasswordHasher::dummy_verify`]. Goes through the same queue as `verify`, so
    /// waiting time does not tell unknown accounts apart either.
    pub async fn dummy_verify(&self, password: SecretString) {
        // A pool failure here has no caller to report to; the time was spent either way.
        let _ =
            self.run(move |hasher| hasher.dummy_verify(password.expose_secret().as_bytes())).await;
    }

    /// See [`PasswordHasher::needs_rehash`]; cheap, so it runs inline.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        self.inner.hasher.needs_rehash(phc)
    }

    /// The maximum number of concurrent computations.
    pub fn permits(&self) -> usize {
        self.inner.permits
    }

    /// Permits currently taken (jobs running or about to run), for metrics.
    pub fn in_use(&self) -> usize {
        self.inner.permits - self.inner.semaphore.available_permits()
    }

    /// The hasher's settings, for example to report them.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The highest number of computations that have run at the same time so far.
    pub fn peak_running(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    async fn run<T, F>(&self, job: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.semaphore)
            .acquire_owned()
            .await
            .map_err(|_| CryptoError::Internal("hashing pool closed".to_owned()))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let result = job(&inner.hasher);
            inner.running.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| CryptoError::Internal(format!("hashing task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Argon2Settings, MasterKey, Pepper};
    use std::sync::atomic::AtomicBool;

    fn pool(permits: usize, memory_kib: u32) -> HashingPool {
        let settings = Argon2Settings { memory_kib, iterations: 1, parallelism: 1 };
        let hasher =
            PasswordHasher::new(settings, Pepper::from_master(&MasterKey::generate(), 1), vec![])
                .unwrap();
        HashingPool::new(hasher, permits)
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trip_through_the_pool() {
        let pool = pool(2, 1024);
        let phc = pool.hash(secret("pw")).await.unwrap();
        assert!(pool.verify(secret("pw"), phc.clone()).await.unwrap());
        assert!(!pool.verify(secret("nope"), phc.clone()).await.unwrap());
        assert!(matches!(
            pool.verify(secret("pw"), "garbage".to_owned()).await,
            Err(CryptoError::InvalidHash)
        ));
        pool.dummy_verify(secret("pw")).await;
        assert!(!pool.needs_rehash(&phc));
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_never_runs_more_than_its_permits() {
        // Larger memory so each hash lasts long enough for jobs to overlap.
        let pool = pool(2, 8192);
        assert_eq!(pool.permits(), 2);
        let done = Arc::new(AtomicBool::new(false));
        let max_in_use = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (pool, done, max_in_use) = (pool.clone(), done.clone(), max_in_use.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    max_in_use.fetch_max(pool.in_use(), Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        };
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.hash(secret(&format!("pw{i}"))).await })
            })
            .collect();
        for job in jobs {
            assert!(job.await.unwrap().unwrap().starts_with("$argon2id$"));
        }
        done.store(true, Ordering::SeqCst);
        sampler.await.unwrap();

        let sampled = max_in_use.load(Ordering::SeqCst);
        assert!((1..=2).contains(&sampled), "sampled in_use peak {sampled}");
        let peak = pool.peak_running();
        assert!((1..=2).contains(&peak), "running peak {peak}");
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn zero_permits_become_one_and_default_is_positive() {
        assert_eq!(pool(0, 1024).permits(), 1);
        assert!(HashingPool::default_permits() >= 1);
    }
}
