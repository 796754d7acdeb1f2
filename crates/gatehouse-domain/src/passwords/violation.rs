//! One broken password rule, with the stable code the API publishes in `errors[]`.

use serde::Serialize;

/// The stable codes, one per rule. Clients match on these, so they never change.
pub mod codes {
    pub const TOO_SHORT: &str = "too_short";
    pub const TOO_LONG: &str = "too_long";
    pub const MISSING_UPPERCASE: &str = "missing_uppercase";
    pub const MISSING_LOWERCASE: &str = "missing_lowercase";
    pub const MISSING_NUMBER: &str = "missing_number";
    pub const MISSING_SYMBOL: &str = "missing_symbol";
    pub const TOO_WEAK: &str = "too_weak";
    pub const COMMON: &str = "common";
    pub const BREACHED: &str = "breached";
    pub const REUSED: &str = "reused";
}

/// One broken rule. `code` is stable snake_case; `message` is for people and never quotes the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyViolation {
    pub code: &'static str,
    pub message: String,
}

impl PolicyViolation {
    pub fn new(code: &'static str, message: impl Into<String>) -> PolicyViolation {
        PolicyViolation { code, message: message.into() }
    }

    /// Found by the breached-password service.
    pub fn is_breach(&self) -> bool {
        self.code == codes::BREACHED
    }

    /// Matches one of the account's recent passwords.
    pub fn is_reuse(&self) -> bool {
        self.code == codes::REUSED
    }
}
