//! The identity and free-text fields of an account: email, username, names and the picture
//! URL, parsed, trimmed and bounded.

use crate::error::FieldIssue;
use crate::users::email::Email;
use crate::users::username::Username;

const MAX_NAME_LENGTH: usize = 100;
const MAX_IMAGE_URL_LENGTH: usize = 2048;

/// Trims a name; empty means absent; too long or with control characters is an issue.
pub(crate) fn parse_name(
    value: Option<&str>,
    field: &str,
    issues: &mut Vec<FieldIssue>,
) -> Option<String> {
    let trimmed = value.map(str::trim).filter(|name| !name.is_empty())?;
    if trimmed.chars().count() > MAX_NAME_LENGTH || trimmed.chars().any(char::is_control) {
        issues.push(FieldIssue::new(
            field,
            "invalid",
            format!("At most {MAX_NAME_LENGTH} characters, no control characters."),
        ));
        return None;
    }
    Some(trimmed.to_owned())
}

/// An http(s) URL of bounded length without white space, or an issue.
pub(crate) fn parse_image_url(value: &str, issues: &mut Vec<FieldIssue>) -> Option<String> {
    let trimmed = value.trim();
    let valid = trimmed.len() <= MAX_IMAGE_URL_LENGTH
        && (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        issues.push(FieldIssue::new(
            "image_url",
            "invalid_url",
            "An http(s) URL of at most 2048 characters.",
        ));
        return None;
    }
    Some(trimmed.to_owned())
}

/// The identity fields of a new account (sign-up, admin creation, import), each parsed; what is
/// wrong goes to `issues`, so every problem is reported at once.
pub(crate) struct NewIdentity {
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl NewIdentity {
    pub(crate) fn parse(
        email: &str,
        username: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
        issues: &mut Vec<FieldIssue>,
    ) -> NewIdentity {
        let email = Email::parse(email, "email").map_err(|issue| issues.push(issue)).ok();
        let username = username.filter(|name| !name.trim().is_empty()).and_then(|name| {
            Username::parse(name, "username").map_err(|issue| issues.push(issue)).ok()
        });
        NewIdentity {
            email,
            username,
            first_name: parse_name(first_name, "first_name", issues),
            last_name: parse_name(last_name, "last_name", issues),
        }
    }
}
