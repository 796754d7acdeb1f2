//! The password policy's configuration and the public description of it that clients read.

use serde::{Deserialize, Serialize};

/// What counts as a symbol, in words, for clients that pre-validate.
pub const SYMBOLS_DESCRIPTION: &str =
    "any character that is neither a letter, a digit nor whitespace (for example ! ? # € _)";

/// The highest zxcvbn score; scores run from 0 (guessable in under 10^3 tries) to 4.
pub const MAX_STRENGTH_SCORE: u8 = 4;

/// The password rules, from configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicySettings {
    /// Minimum length in Unicode scalar values (so "é" counts once, whatever its encoding).
    pub min_length: usize,
    /// Maximum length in Unicode scalar values; bounds the work spent on one password.
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_number: bool,
    pub require_symbol: bool,
    /// Minimum zxcvbn score (0..=4); 0 turns the strength rule off.
    pub min_strength_score: u8,
    /// How many previous passwords may not be reused; 0 turns the rule off.
    pub history_size: usize,
}

impl Default for PasswordPolicySettings {
    /// NIST SP 800-63B-style defaults: a length floor, a strength estimate and a blocklist
    /// rather than composition rules, which push users towards predictable patterns.
    fn default() -> Self {
        PasswordPolicySettings {
            min_length: 8,
            max_length: 256,
            require_uppercase: false,
            require_lowercase: false,
            require_number: false,
            require_symbol: false,
            min_strength_score: 2,
            history_size: 5,
        }
    }
}

impl PasswordPolicySettings {
    /// Checks the settings for contradictions, so configuration loading can refuse them at
    /// start-up rather than every password being rejected later.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_length == 0 {
            return Err("min_length must be at least 1".to_owned());
        }
        if self.min_length > self.max_length {
            return Err(format!(
                "min_length ({}) is greater than max_length ({})",
                self.min_length, self.max_length
            ));
        }
        if self.min_strength_score > MAX_STRENGTH_SCORE {
            return Err(format!(
                "min_strength_score must be between 0 and {MAX_STRENGTH_SCORE}, got {}",
                self.min_strength_score
            ));
        }
        Ok(())
    }
}

/// The policy as `GET /v1/auth/password-policy` publishes it, so clients can check a password
/// before sending it. The common-password and breach rules can only be checked by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublishedPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_number: bool,
    pub require_symbol: bool,
    pub min_strength_score: u8,
    pub history_size: usize,
    /// Whether passwords are also checked against an online breached-password service.
    pub breach_check: bool,
    /// What counts as a symbol for `require_symbol`.
    pub symbols: String,
}

impl PublishedPolicy {
    pub(super) fn new(settings: &PasswordPolicySettings, breach_check: bool) -> PublishedPolicy {
        PublishedPolicy {
            min_length: settings.min_length,
            max_length: settings.max_length,
            require_uppercase: settings.require_uppercase,
            require_lowercase: settings.require_lowercase,
            require_number: settings.require_number,
            require_symbol: settings.require_symbol,
            min_strength_score: settings.min_strength_score,
            history_size: settings.history_size,
            breach_check,
            symbols: SYMBOLS_DESCRIPTION.to_owned(),
        }
    }
}
