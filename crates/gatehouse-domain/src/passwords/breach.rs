//! The port to a breached-password service.

/// A breached-password service, queried by k-anonymity range (only a hash prefix leaves us).
///
/// Implementations must keep the password and its full hash out of every error, log line and
/// request other than the prefix query itself.
#[async_trait::async_trait]
pub trait BreachedPasswordCheck: Send + Sync {
    /// `Ok(true)` when the password is known breached. `Err(reason)` when the service could
    /// not answer; `reason` never contains the password or its hash.
    async fn is_breached(&self, password: &str) -> Result<bool, String>;
}
