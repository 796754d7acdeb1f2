//! The bounded pool of dedicated threads that runs Argon2 off the async runtime.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{Semaphore, oneshot};

use super::{Argon2Memory, PasswordHasher};
use crate::CryptoError;

/// Runs password hashing on `permits` dedicated worker threads (`gatehouse-argon2-<n>`).
///
/// Each job first takes a semaphore permit, then is sent to the workers holding it and
/// answers through a oneshot channel. So at most `permits` Argon2 computations run at once
/// (one per worker), and at most as many more wait in the channel, however many sign-ins
/// arrive; the rest wait asynchronously without holding a thread, and the async runtime never
/// blocks. The permit moves into the job, so a caller that gives up (a dropped request) does
/// not free it before the computation it started has finished.
///
/// Admitting [`ADMITTED_PER_WORKER`] jobs per worker keeps the next job ready in the channel,
/// so a worker goes from one computation straight to the next while sign-ins are waiting.
/// With one permit per worker, it idled after each job until the async runtime got round to
/// the next caller (busy with that sign-in's token signature and database write): about a
/// seventh of the workers' time under a sign-in load. A waiting job holds only its inputs.
///
/// Each worker keeps its Argon2 memory (`m_cost`, allocated at its first job) for the life
/// of the pool, so the pool's memory stays at `permits × m_cost`: a fresh buffer per hash on
/// ever-changing blocking threads left freed buffers below glibc's mmap threshold in per-thread
/// malloc arenas, and cost page faults on every hash. Hashes made with more memory than the
/// configured `m_cost` (old settings, imported legacy hashes) allocate their own buffer.
///
/// The workers exit when the last clone of the pool is dropped, after finishing the job they
/// are running, if any; nothing waits for them.
#[derive(Clone, Debug)]
pub struct HashingPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// What the workers share; they do not hold `Inner`, so dropping the pool drops `jobs`.
    shared: Arc<Shared>,
    /// The only sender: once it is dropped, the workers' `recv` fails and they exit.
    /// Unbounded, but never holds more jobs than the semaphore admits, as each carries a permit.
    jobs: Sender<Job>,
    semaphore: Arc<Semaphore>,
    permits: usize,
    /// The semaphore's size: `permits × ADMITTED_PER_WORKER`.
    admitted: usize,
}

#[derive(Debug)]
struct Shared {
    hasher: PasswordHasher,
    /// Computations running right now, counted by the workers; with `peak` it lets tests
    /// observe the real concurrency rather than the semaphore's view of it.
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Worker threads alive (started and not yet exited).
    workers: AtomicUsize,
}

/// Jobs admitted per worker: the one it runs and the next one, waiting in the channel.
const ADMITTED_PER_WORKER: usize = 2;

/// A computation sent to the workers; it sends its own result back.
type Job = Box<dyn FnOnce(&PasswordHasher, &mut Argon2Memory) + Send>;

impl HashingPool {
    /// A pool around `hasher` allowing `permits` concurrent computations (0 is raised to 1),
    /// with one worker thread each, and as many jobs waiting for them. Threads are cheap
    /// while idle; memory is taken at each worker's first job.
    ///
    /// If the system refuses to start a thread, the pool runs with the workers it has; with
    /// none, every job fails with `CryptoError::Internal`.
    pub fn new(hasher: PasswordHasher, permits: usize) -> HashingPool {
        let permits = permits.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            hasher,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
        });
        let (sender, receiver) = mpsc::channel::<Job>();
        // One receiver shared by all workers: whichever is idle takes the next job.
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..permits {
            let (worker_shared, receiver) = (Arc::clone(&shared), Arc::clone(&receiver));
            shared.workers.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-argon2-{n}"))
                .spawn(move || work(&worker_shared, &receiver));
            if spawned.is_err() {
                // The closure, with its clones, was dropped unrun.
                shared.workers.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let admitted = permits.saturating_mul(ADMITTED_PER_WORKER).min(Semaphore::MAX_PERMITS);
        HashingPool {
            inner: Arc::new(Inner {
                shared,
                jobs: sender,
                semaphore: Arc::new(Semaphore::new(admitted)),
                permits,
                admitted,
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
        self.run(move |hasher, memory| hasher.hash_in(password.expose_secret().as_bytes(), memory))
            .await?
    }

    /// See [`PasswordHasher::verify`].
    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, CryptoError> {
        self.run(move |hasher, memory| {
            hasher.verify_in(password.expose_secret().as_bytes(), &phc, memory)
        })
        .await?
    }

    /// Makes the dummy hash on a worker (call once after start-up).
    pub async fn warm_up(&self) {
        // Computed in a buffer of its own (freed afterwards), not in the worker's kept memory:
        // an idle server that has not signed anyone in yet stays small.
        let _ = self.run(|hasher, _memory| hasher.warm_up()).await;
    }

    /// See [`PasswordHasher::dummy_verify`]. Goes through the same queue, and computes in the
    /// same worker memory, as `verify`, so neither waiting nor computing time tells unknown
    /// accounts apart.
    pub async fn dummy_verify(&self, password: SecretString) {
        // A pool failure here has no caller to report to; the time was spent either way.
        let _ = self
            .run(move |hasher, memory| {
                hasher.dummy_verify_in(password.expose_secret().as_bytes(), memory);
            })
            .await;
    }

    /// See [`PasswordHasher::needs_rehash`]; cheap, so it runs inline.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        self.inner.shared.hasher.needs_rehash(phc)
    }

    /// The maximum number of concurrent computations.
    pub fn permits(&self) -> usize {
        self.inner.permits
    }

    /// Jobs admitted right now (running, or waiting in the channel for a worker), for metrics.
    pub fn in_use(&self) -> usize {
        self.inner.admitted - self.inner.semaphore.available_permits()
    }

    /// The hasher's settings, for example to report them.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.shared.hasher
    }

    /// The highest number of computations that have run at the same time so far.
    pub fn peak_running(&self) -> usize {
        self.inner.shared.peak.load(Ordering::SeqCst)
    }

    async fn run<T, F>(&self, job: F) -> Result<T, CryptoError>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher, Option<&mut Argon2Memory>) -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.semaphore)
            .acquire_owned()
            .await
            .map_err(|_| CryptoError::Internal("hashing pool closed".to_owned()))?;
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |hasher, memory| {
            let result = job(hasher, Some(memory));
            // Free the permit before answering, so the caller sees it back when it resumes.
            drop(permit);
            // The caller may have given up; the result is then discarded.
            let _ = answer.send(result);
        });
        // Never blocks (unbounded channel); fails only if every worker is gone, and then the
        // job, with its permit, is dropped here.
        self.inner
            .jobs
            .send(job)
            .map_err(|_| CryptoError::Internal("hashing pool has no worker threads".to_owned()))?;
        // A closed answer channel means the job was dropped unrun or panicked.
        answered.await.map_err(|_| CryptoError::Internal("hashing job failed".to_owned()))
    }
}

/// A worker's loop: takes jobs until the pool (the only sender) is gone.
fn work(shared: &Shared, jobs: &Mutex<Receiver<Job>>) {
    /// Counts the worker out however it ends.
    struct Alive<'a>(&'a AtomicUsize);
    impl Drop for Alive<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _alive = Alive(&shared.workers);
    let mut memory = Argon2Memory::default();
    loop {
        // The lock is held only while waiting for a job, not while running it. Nothing
        // panics while holding it, but a poisoned lock would still guard a usable receiver.
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else {
            return;
        };
        let now = shared.running.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak.fetch_max(now, Ordering::SeqCst);
        // A panicking job drops its permit and answer sender (its caller gets an error) and
        // must not take the worker with it. The memory is only scratch space, fine to reuse.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&shared.hasher, &mut memory)));
        shared.running.fetch_sub(1, Ordering::SeqCst);
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

        // Two computing, two more waiting for a worker at most.
        let sampled = max_in_use.load(Ordering::SeqCst);
        assert!((1..=4).contains(&sampled), "sampled in_use peak {sampled}");
        let peak = pool.peak_running();
        assert!((1..=2).contains(&peak), "running peak {peak}");
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_jobs_on_two_permits_all_complete() {
        let pool = pool(2, 1024);
        let jobs: Vec<_> = (0..50)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let password = format!("pw{i}");
                    let phc = pool.hash(secret(&password)).await.unwrap();
                    assert!(pool.verify(secret(&password), phc.clone()).await.unwrap());
                    pool.dummy_verify(secret(&password)).await;
                    phc
                })
            })
            .collect();
        let mut hashes = std::collections::HashSet::new();
        for job in jobs {
            assert!(hashes.insert(job.await.unwrap()));
        }
        let peak = pool.peak_running();
        assert!((1..=2).contains(&peak), "running peak {peak}");
        assert_eq!(pool.in_use(), 0);
    }

    /// What the pool computes (in its workers' reused memory) is what the hasher computes on
    /// its own: each verifies the other's hashes, and both reject the same wrong passwords.
    #[tokio::test]
    async fn pool_and_direct_results_agree() {
        let master = MasterKey::generate();
        let settings = Argon2Settings { memory_kib: 2048, iterations: 1, parallelism: 1 };
        let direct =
            PasswordHasher::new(settings.clone(), Pepper::from_master(&master, 1), vec![]).unwrap();
        let pool = HashingPool::new(
            PasswordHasher::new(settings, Pepper::from_master(&master, 1), vec![]).unwrap(),
            2,
        );
        for round in 0..3 {
            let password = format!("pw{round}");
            let pooled = pool.hash(secret(&password)).await.unwrap();
            let own = direct.hash(password.as_bytes()).unwrap();
            assert_eq!(pooled.len(), own.len());
            assert_eq!(pooled[..pooled.len() - 66], own[..own.len() - 66], "same prefix");
            assert!(direct.verify(password.as_bytes(), &pooled).unwrap());
            assert!(!direct.verify(b"wrong", &pooled).unwrap());
            assert!(pool.verify(secret(&password), own.clone()).await.unwrap());
            assert!(!pool.verify(secret("wrong"), own.clone()).await.unwrap());
            assert!(!pool.needs_rehash(&pooled));
        }
    }

    /// Old hashes (smaller or larger memory than configured) and foreign ones still verify
    /// through the pool.
    #[tokio::test]
    async fn pool_verifies_hashes_made_with_other_parameters() {
        let master = MasterKey::generate();
        let hasher = |memory_kib, iterations, parallelism| {
            let settings = Argon2Settings { memory_kib, iterations, parallelism };
            PasswordHasher::new(settings, Pepper::from_master(&master, 1), vec![]).unwrap()
        };
        let pool = HashingPool::new(hasher(2048, 1, 1), 1);
        pool.warm_up().await;
        for phc in [
            hasher(1024, 1, 1).hash(b"pw").unwrap(),
            hasher(4096, 2, 1).hash(b"pw").unwrap(),
            hasher(2048, 1, 2).hash(b"pw").unwrap(),
            // Imported from another system.
            bcrypt::hash("pw", 4).unwrap(),
        ] {
            assert!(pool.needs_rehash(&phc), "{phc}");
            assert!(pool.verify(secret("pw"), phc.clone()).await.unwrap(), "{phc}");
            assert!(!pool.verify(secret("nope"), phc.clone()).await.unwrap(), "{phc}");
        }
    }

    /// The workers are named threads, one per permit, and all exit once the last clone of the
    /// pool is gone (bounded wait: they may be finishing nothing, or a job).
    #[tokio::test]
    async fn dropping_the_pool_ends_its_workers() {
        let pool = pool(3, 1024);
        let clone = pool.clone();
        let shared = Arc::clone(&pool.inner.shared);
        assert_eq!(shared.workers.load(Ordering::SeqCst), 3);
        pool.hash(secret("pw")).await.unwrap();
        drop(pool);
        clone.hash(secret("pw")).await.unwrap();
        assert_eq!(shared.workers.load(Ordering::SeqCst), 3, "a clone keeps them");
        drop(clone);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shared.workers.load(Ordering::SeqCst) > 0 {
            assert!(std::time::Instant::now() < deadline, "workers still running");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn zero_permits_become_one_and_default_is_positive() {
        assert_eq!(pool(0, 1024).permits(), 1);
        assert!(HashingPool::default_permits() >= 1);
    }
}
