//! The process's RSA signing threads: one per core, fed in order through one queue.
//!
//! An RSA-2048 signature takes a few hundred microseconds of CPU. On tokio's blocking pool
//! every concurrent request got a thread of its own, so under load a dozen signing threads
//! were runnable at once on two cores beside the runtime's workers: time-sliced, migrating,
//! each cold in its caches. Here as many threads as cores take the signatures one after
//! another (the ceiling program's shape), and the async runtime only waits on a oneshot.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::oneshot;

use crate::CryptoError;

type Job = Box<dyn FnOnce() + Send>;

/// The sender of the process's signing queue; its threads start at the first use.
fn queue() -> &'static Mutex<Option<Sender<Job>>> {
    static QUEUE: OnceLock<Mutex<Option<Sender<Job>>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut started = 0;
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-sign-{n}"))
                .spawn(move || work(&receiver));
            if spawned.is_ok() {
                started += 1;
            }
        }
        // Without a thread nobody would answer: callers then sign where they are.
        Mutex::new((started > 0).then_some(sender))
    })
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    yield_to_the_request_path();
    loop {
        let next = receiver.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        // A panicking job sends nothing (its caller sees an error) and must not end the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Marks the calling signing thread `SCHED_BATCH` (Linux): a signature is a long computation
/// nobody is woken for, while the threads of the request path (the runtime's workers, SQLite's
/// writer thread) run briefly between waits, and the SQLite writer's lock is held across each
/// of its round trips. As ordinary threads, a woken writer or worker often waited for a signing
/// thread's time slice to end, and every write behind that lock waited with it: the signed-in
/// code flow on SQLite (three writes per flow) left a quarter of the CPU idle. Batch threads
/// give way to a woken thread at once and keep their full share of an otherwise idle CPU.
/// Measured with `bench/bench.py --only codeflow-sso` (the RS256 ceiling interleaved): 0.33 →
/// 0.40 of RS256/2 on SQLite, the other write paths unchanged. A refusal (no such policy) only
/// leaves the thread as it was.
fn yield_to_the_request_path() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, batch);
    }
}

/// Runs `compute` on a signing thread and answers its result.
pub async fn on_signing_thread<T: Send + 'static>(
    compute: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CryptoError> {
    let (answer, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(compute());
    });
    let sender = queue().lock().unwrap_or_else(PoisonError::into_inner).clone();
    match sender {
        Some(sender) => {
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                job();
            }
        }
        None => job(),
    }
    result.await.map_err(|_| CryptoError::Internal("the signing thread failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_signing_threads_give_way_to_the_request_path() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let policy = on_signing_thread(thread_priority::unix::thread_schedule_policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(policy, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch));
        // The caller's own thread is left as it was.
        let here = thread_priority::unix::thread_schedule_policy().unwrap();
        assert_eq!(here, ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other));
    }

    #[tokio::test]
    async fn signatures_run_on_the_signing_threads_and_a_panic_fails_only_its_caller() {
        let name =
            on_signing_thread(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert!(name.is_some_and(|name| name.starts_with("gatehouse-sign-")));
        let failed = on_signing_thread(|| -> u8 { panic!("a job that fails") }).await;
        assert!(failed.is_err());
        // The threads outlive the panic: many jobs queued at once all answer, in full.
        let jobs: Vec<_> =
            (0..64).map(|n| tokio::spawn(on_signing_thread(move || n * 2))).collect();
        for (n, job) in jobs.into_iter().enumerate() {
            assert_eq!(job.await.unwrap().unwrap(), n * 2);
        }
    }
}
