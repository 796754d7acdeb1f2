//! The per-account budget: besides the per-IP limits of the HTTP layer, every attempt at one
//! account (a password sign-in naming it, a second factor, a step-up, a password change) spends
//! from one sliding window keyed by the account, so guesses spread over many addresses get the
//! same budget as guesses from one. Sign-in keys by the identifier as typed (normalised),
//! whether or not an account has it, so the answer reveals nothing; the other paths by the
//! user id. The window lives in the limiter the server gives (Redis when configured, shared by
//! every instance; memory otherwise). Keys carry a keyed digest, never the address itself.

use std::sync::Arc;

use gatehouse_crypto::Digester;

use crate::error::DomainError;
use crate::ratelimit::{RateLimit, RateLimiter};

/// Purpose of the digest that names an account in limiter keys.
pub const ACCOUNT_LIMIT_DIGEST_PURPOSE: &str = "account-rate-limit";

/// What an attempt names its account by.
#[derive(Debug, Clone, Copy)]
pub enum AccountKey<'a> {
    /// An email address as typed (trimmed and lower-cased here).
    Email(&'a str),
    /// A username as typed (trimmed and lower-cased here).
    Username(&'a str),
    /// A known account.
    User(&'a str),
}

#[derive(Clone)]
pub struct AccountRateLimit {
    limiter: Option<Arc<dyn RateLimiter>>,
    rate: RateLimit,
    key_prefix: String,
    digester: Arc<Digester>,
}

impl AccountRateLimit {
    /// `limiter` is `None` when rate limiting is off.
    pub fn new(
        limiter: Option<Arc<dyn RateLimiter>>,
        rate: RateLimit,
        key_prefix: &str,
        digester: Digester,
    ) -> Self {
        Self { limiter, rate, key_prefix: key_prefix.to_owned(), digester: Arc::new(digester) }
    }

    /// No per-account limit (tools and tests that do not exercise it).
    pub fn off() -> Self {
        Self {
            limiter: None,
            rate: RateLimit::new(0, std::time::Duration::from_secs(60)),
            key_prefix: String::new(),
            digester: Arc::new(Digester::ephemeral()),
        }
    }

    /// The limiter key of `key` (the one place these keys are built).
    fn limiter_key(&self, key: AccountKey<'_>) -> String {
        let (kind, text) = match key {
            AccountKey::Email(text) => ("email", text.trim().to_lowercase()),
            AccountKey::Username(text) => ("username", text.trim().to_lowercase()),
            AccountKey::User(id) => ("user", id.to_owned()),
        };
        let digest = self.digester.digest_hex(format!("{kind}:{text}").as_bytes());
        format!("{}account:{digest}", self.key_prefix)
    }

    /// Spends one attempt at the account `key` names: `DomainError::RateLimited` once the
    /// window is full. A failing limiter lets the attempt through (logged): the lockout
    /// still protects the account.
    pub async fn spend(&self, key: AccountKey<'_>) -> Result<(), DomainError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        match limiter.hit(&self.limiter_key(key), self.rate).await {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => Err(DomainError::RateLimited {
                retry_after_seconds: decision.retry_after_seconds().unwrap_or(1),
            }),
            Err(error) => {
                tracing::error!(%error, "per-account rate limiter unavailable; letting the attempt through");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_the_identifier_and_hide_it() {
        let limit = AccountRateLimit::new(
            None,
            RateLimit::new(5, std::time::Duration::from_secs(60)),
            "gh:",
            Digester::ephemeral(),
        );
        let email = limit.limiter_key(AccountKey::Email(" Ada@Example.COM "));
        assert_eq!(email, limit.limiter_key(AccountKey::Email("ada@example.com")));
        assert!(email.starts_with("gh:account:") && !email.contains("ada"), "{email}");
        assert_ne!(email, limit.limiter_key(AccountKey::Username("ada@example.com")));
        assert_ne!(email, limit.limiter_key(AccountKey::User("ada@example.com")));
    }
}
