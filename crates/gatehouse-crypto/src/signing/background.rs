//! The scheduling priority of the threads that compute RSA signatures.
//!
//! An RSA-2048 signature is half a millisecond of CPU, so under a token load the threads
//! signing are always runnable. At the same priority as the rest of the server they take
//! their fair share of the cores against the threads a request's other steps run on (the
//! async runtime's workers, SQLite's connection threads), and each of those steps waits for
//! a time slice behind them; on SQLite a writer does so while holding the write lock, so
//! every other writer waits too. At a lower priority (a higher `nice`) the signing threads
//! run whenever no other thread of the server wants the core: the same signatures per second
//! when the cores are busy only with them, and no stall of the steps that hold locks.

/// The `nice` increment of a signing thread (0 is the default, 19 the lowest priority).
const SIGNING_NICE: i32 = 10;

/// Lowers the calling thread's priority for signing, once per thread (Linux; a no-op
/// elsewhere). A thread whose priority cannot be changed keeps it: the signatures are the
/// same, only their scheduling differs.
pub fn lower_this_threads_priority() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            lower();
        }
    });
}

#[cfg(target_os = "linux")]
fn lower() {
    // On Linux a thread id names one thread to setpriority(2), and `nice` is per thread. A
    // refusal (a sandbox forbidding it) leaves the thread as it was, which is only slower.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), SIGNING_NICE);
}

#[cfg(not(target_os = "linux"))]
fn lower() {}
