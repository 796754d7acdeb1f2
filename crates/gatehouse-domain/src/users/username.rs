//! `Username`: NFKC-normalised, case-folded, from a small alphabet, not reserved — so two
//! names that look the same are the same name.

use unicode_normalization::UnicodeNormalization;

use crate::error::FieldIssue;

const MIN_LENGTH: usize = 3;
const MAX_LENGTH: usize = 32;

/// Names that would impersonate the service or collide with routes.
const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "system",
    "support",
    "security",
    "gatehouse",
    "api",
    "www",
    "help",
    "null",
    "undefined",
    "me",
    "settings",
    "login",
    "logout",
    "signup",
    "signin",
    "account",
    "oauth",
    "oauth2",
    "auth",
    "mail",
    "postmaster",
    "abuse",
    "webmaster",
    "staff",
    "moderator",
    "owner",
    "anonymous",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str, field: &str) -> Result<Username, FieldIssue> {
        let normalised: String = input.trim().nfkc().collect::<String>().to_lowercase();
        let length = normalised.chars().count();
        if length < MIN_LENGTH {
            return Err(FieldIssue::new(
                field,
                "too_short",
                format!("At least {MIN_LENGTH} characters."),
            ));
        }
        if length > MAX_LENGTH {
            return Err(FieldIssue::new(
                field,
                "too_long",
                format!("At most {MAX_LENGTH} characters."),
            ));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        if !normalised.chars().all(allowed) {
            return Err(FieldIssue::new(
                field,
                "invalid_characters",
                "Use letters a–z, digits, dots, dashes and underscores.",
            ));
        }
        if !normalised.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(FieldIssue::new(
                field,
                "invalid_characters",
                "Start with a letter or a digit.",
            ));
        }
        if RESERVED.contains(&normalised.as_str()) {
            return Err(FieldIssue::new(field, "reserved", "This username is reserved."));
        }
        Ok(Username(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let parsed = Username::parse(input, "username");
        match expected {
            Ok(normalised) => assert_eq!(parsed.unwrap().as_str(), normalised, "{input:?}"),
            Err(code) => assert_eq!(parsed.unwrap_err().code, code, "{input:?}"),
        }
    }

    #[test]
    fn usernames_are_normalised_or_refused() {
        check(" Ada_Lovelace ", Ok("ada_lovelace"));
        check("ada.l-99", Ok("ada.l-99"));
        // Fullwidth letters fold to ASCII under NFKC: no look-alike duplicates.
        check("ＡＤＡ", Ok("ada"));
        check("ab", Err("too_short"));
        check(&"a".repeat(33), Err("too_long"));
        check("ada@example.com", Err("invalid_characters"));
        check("ada lovelace", Err("invalid_characters"));
        check("_ada", Err("invalid_characters"));
        check("adä", Err("invalid_characters"));
        check("Admin", Err("reserved"));
    }
}
