//! `Email`: an address that exists is valid and normalised (trimmed, lower-cased), so equal
//! addresses have equal blind-index digests.

use std::fmt;

use email_address::{EmailAddress, Options};

use crate::error::FieldIssue;

/// RFC 5321's limit on a forward path.
const MAX_EMAIL_LENGTH: usize = 254;

#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses and normalises. Display names (`Ada <ada@example.com>`), addresses without a
    /// dotted domain and over-long addresses are refused.
    pub fn parse(input: &str, field: &str) -> Result<Email, FieldIssue> {
        let normalised = input.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(FieldIssue::new(field, "required", "An email address is required."));
        }
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(FieldIssue::new(field, "too_long", "The email address is too long."));
        }
        let options = Options::default().without_display_text().with_required_tld();
        EmailAddress::parse_with_options(&normalised, options).map_err(|_| {
            FieldIssue::new(field, "invalid_email", "This is not a valid email address.")
        })?;
        Ok(Email(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, fed to the password strength estimate.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Debug for Email {
    /// Addresses are personal data: debug output shows only the domain.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit('@').next().unwrap_or_default();
        write!(formatter, "Email(…@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let parsed = Email::parse(input, "email");
        match expected {
            Ok(normalised) => assert_eq!(parsed.unwrap().as_str(), normalised, "{input:?}"),
            Err(code) => assert_eq!(parsed.unwrap_err().code, code, "{input:?}"),
        }
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        check("  Ada@Example.COM ", Ok("ada@example.com"));
        check("ada.lovelace+tag@example.co.uk", Ok("ada.lovelace+tag@example.co.uk"));
        check("", Err("required"));
        check("   ", Err("required"));
        check("ada", Err("invalid_email"));
        check("ada@", Err("invalid_email"));
        check("@example.com", Err("invalid_email"));
        check("ada@localhost", Err("invalid_email"));
        check("Ada <ada@example.com>", Err("invalid_email"));
        check("ada@@example.com", Err("invalid_email"));
        check(&format!("{}@example.com", "a".repeat(250)), Err("too_long"));
    }

    #[test]
    fn debug_hides_the_local_part() {
        let email = Email::parse("secret.person@example.com", "email").unwrap();
        assert_eq!(format!("{email:?}"), "Email(…@example.com)");
        assert_eq!(email.local_part(), "secret.person");
    }
}
