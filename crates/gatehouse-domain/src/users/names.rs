//! The free-text fields of a profile: names and the picture URL, trimmed and bounded.

use crate::error::FieldIssue;

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
