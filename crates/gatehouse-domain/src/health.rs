//! Readiness checks: each backing service the process depends on answers "can you serve?".

use async_trait::async_trait;

/// One dependency that must answer for the process to be ready (database, Redis, ...).
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// A short stable name reported by `/readyz` ("database", "redis").
    fn name(&self) -> &'static str;
    /// Whether a failure makes the process unready (`503`); an optional dependency (the event
    /// stream) is only reported.
    fn required(&self) -> bool {
        true
    }
    /// `Err` carries a human description of the failure, without secrets (no URLs with passwords).
    async fn check(&self) -> Result<(), String>;
}
