//! The password policy: length, character classes, common passwords, strength (zxcvbn), the
//! breached-password port, and reuse of recent passwords.
//!
//! Invariant: a password never appears in a violation message, a log line or an error.
//! Invariant: the expensive checks run last and only when needed: zxcvbn never sees a password
//! longer than `max_length`, the online breach check runs only when every offline rule passes,
//! and a failing breach service lets the password through (fail-open, with a warning) rather
//! than blocking every sign-up while it is down.

mod breach;
mod service;
mod settings;
mod strength;
mod violation;

use std::fmt;
use std::sync::Arc;

use gatehouse_crypto::secrecy::{ExposeSecret as _, SecretString};
use gatehouse_crypto::{CryptoError, HashingPool};

pub use breach::BreachedPasswordCheck;
pub use service::PasswordService;
pub use settings::{
    MAX_STRENGTH_SCORE, PasswordPolicySettings, PublishedPolicy, SYMBOLS_DESCRIPTION,
};
pub use violation::{PolicyViolation, codes};

/// Checks new passwords against the configured rules.
#[derive(Clone)]
pub struct PasswordPolicy {
    settings: PasswordPolicySettings,
    breach: Option<Arc<dyn BreachedPasswordCheck>>,
}

impl PasswordPolicy {
    /// A policy with these rules; `breach` is the online breached-password service, if any.
    pub fn new(
        settings: PasswordPolicySettings,
        breach: Option<Arc<dyn BreachedPasswordCheck>>,
    ) -> Self {
        PasswordPolicy { settings, breach }
    }

    pub fn settings(&self) -> &PasswordPolicySettings {
        &self.settings
    }

    /// The rules as published to clients.
    pub fn published(&self) -> PublishedPolicy {
        PublishedPolicy::new(&self.settings, self.breach.is_some())
    }

    /// Every violated rule, each its own entry, in a stable order: length, classes, common,
    /// strength, breached. `user_inputs` (email, username, names) are given to zxcvbn so that
    /// passwords built from them score low. An empty list means the password is acceptable
    /// (reuse is checked separately by [`PasswordPolicy::check_history`]).
    pub async fn check(&self, password: &str, user_inputs: &[&str]) -> Vec<PolicyViolation> {
        let mut violations = Vec::new();
        let length = password.chars().count();
        let too_long = self.check_length(length, &mut violations);
        self.check_classes(password, &mut violations);
        if too_long {
            // Already rejected, and zxcvbn's cost grows quickly with length: stop here.
            return violations;
        }
        self.check_strength(password, user_inputs, &mut violations).await;
        if violations.is_empty() {
            // Only now is the network call worth making (and only now is the hash prefix of a
            // password we would accept sent to anyone).
            self.check_breached(password, &mut violations).await;
        }
        violations
    }

    /// `Some(reused violation)` when `password` verifies against one of `previous_hashes`
    /// (PHC strings, newest first; only the first `history_size` are checked). Each
    /// comparison is an Argon2 verification on the bounded pool, so the newest are tried
    /// first and the search stops at the first match.
    pub async fn check_history(
        &self,
        hashing: &HashingPool,
        password: &str,
        previous_hashes: &[String],
    ) -> Result<Option<PolicyViolation>, CryptoError> {
        for phc in previous_hashes.iter().take(self.settings.history_size) {
            let secret = SecretString::from(password.to_owned());
            match hashing.verify(secret, phc.clone()).await {
                Ok(true) => return Ok(Some(self.reused_violation())),
                Ok(false) => {}
                // A hash under a retired pepper (or otherwise unreadable) cannot be compared.
                // Skipping it weakens the reuse rule for that one entry; failing would block
                // every password change of the account.
                Err(CryptoError::InvalidHash) => {
                    tracing::warn!("skipping a previous password hash that cannot be verified");
                }
                Err(other) => return Err(other),
            }
        }
        Ok(None)
    }

    /// Pushes the length violation, if any; returns whether the password is too long.
    fn check_length(&self, length: usize, violations: &mut Vec<PolicyViolation>) -> bool {
        let (min, max) = (self.settings.min_length, self.settings.max_length);
        if length < min {
            violations.push(PolicyViolation::new(
                codes::TOO_SHORT,
                format!("must be at least {min} characters long"),
            ));
        }
        if length > max {
            violations.push(PolicyViolation::new(
                codes::TOO_LONG,
                format!("must be at most {max} characters long"),
            ));
            return true;
        }
        false
    }

    fn check_classes(&self, password: &str, violations: &mut Vec<PolicyViolation>) {
        let settings = &self.settings;
        let rules = [
            ClassRule {
                required: settings.require_uppercase,
                matches: char::is_uppercase,
                code: codes::MISSING_UPPERCASE,
                message: "must contain an uppercase letter",
            },
            ClassRule {
                required: settings.require_lowercase,
                matches: char::is_lowercase,
                code: codes::MISSING_LOWERCASE,
                message: "must contain a lowercase letter",
            },
            ClassRule {
                required: settings.require_number,
                matches: char::is_numeric,
                code: codes::MISSING_NUMBER,
                message: "must contain a number",
            },
            ClassRule {
                required: settings.require_symbol,
                matches: is_symbol,
                code: codes::MISSING_SYMBOL,
                message: "must contain a symbol",
            },
        ];
        for rule in rules {
            if rule.required && !password.chars().any(rule.matches) {
                violations.push(PolicyViolation::new(rule.code, rule.message));
            }
        }
    }

    /// The common-password and strength rules, from one zxcvbn run. zxcvbn takes up to about
    /// 10 ms (optimised build, 100 characters), too long to hold an async worker, so it runs
    /// on the blocking pool.
    async fn check_strength(
        &self,
        password: &str,
        user_inputs: &[&str],
        violations: &mut Vec<PolicyViolation>,
    ) {
        let password = SecretString::from(password.to_owned());
        let user_inputs: Vec<String> =
            user_inputs.iter().map(|input| (*input).to_owned()).collect();
        let analysis = tokio::task::spawn_blocking(move || {
            let user_inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
            strength::analyse(password.expose_secret(), &user_inputs)
        })
        .await;
        let report = match analysis {
            Ok(report) => report,
            Err(error) => {
                // Only a bug in zxcvbn or a runtime shutting down gets here. Fail closed: this
                // rule is local, so unlike the breach service it has no outage to ride out.
                // The panic message is not logged, in case it quotes its input.
                tracing::error!(panicked = error.is_panic(), "password strength estimation failed");
                violations.push(PolicyViolation::new(
                    codes::TOO_WEAK,
                    "could not be checked for strength; please try again",
                ));
                return;
            }
        };
        if report.common {
            violations.push(PolicyViolation::new(
                codes::COMMON,
                "is one of the most commonly used passwords",
            ));
        }
        let minimum = self.settings.min_strength_score;
        if minimum > 0 && report.score < minimum {
            let score = report.score;
            let mut message = format!(
                "is too easy to guess (strength {score} of {MAX_STRENGTH_SCORE}, \
                 at least {minimum} required)"
            );
            if let Some(feedback) = report.feedback {
                message.push_str(": ");
                message.push_str(&feedback);
            }
            violations.push(PolicyViolation::new(codes::TOO_WEAK, message));
        }
    }

    async fn check_breached(&self, password: &str, violations: &mut Vec<PolicyViolation>) {
        let Some(breach) = &self.breach else {
            return;
        };
        match breach.is_breached(password).await {
            Ok(true) => violations.push(PolicyViolation::new(
                codes::BREACHED,
                "has appeared in a data breach; choose another",
            )),
            Ok(false) => {}
            Err(reason) => {
                // Fail-open: an outage of a third-party service must not stop every sign-up
                // and password change. The port promises `reason` holds no password material.
                tracing::warn!(%reason, "breached-password check failed; password accepted");
            }
        }
    }

    fn reused_violation(&self) -> PolicyViolation {
        let count = self.settings.history_size;
        let message = if count == 1 {
            "must differ from your previous password".to_owned()
        } else {
            format!("must differ from your last {count} passwords")
        };
        PolicyViolation::new(codes::REUSED, message)
    }
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("settings", &self.settings)
            .field("breach_check", &self.breach.is_some())
            .finish()
    }
}

/// A character class the settings may require, with the violation reported when it is missing.
struct ClassRule {
    required: bool,
    matches: fn(char) -> bool,
    code: &'static str,
    message: &'static str,
}

/// A symbol is any character that is neither alphanumeric (in Unicode's sense, so "é" and "٣"
/// are not symbols) nor whitespace.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

#[cfg(test)]
mod tests;
