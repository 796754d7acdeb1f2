//! Where to send the browser after signing in or out: only a same-origin path, so a crafted
//! `return_to` can never turn the login page into an open redirect.

/// Where the browser goes when `return_to` is missing or refused.
pub const DEFAULT_RETURN_TO: &str = "/account";

/// Longest `return_to` accepted (an authorization request with its parameters fits).
pub const MAX_RETURN_TO_LENGTH: usize = 2048;

/// `return_to` if it is a same-origin relative path: it starts with one `/`, not `//` or
/// `/\` (browsers read both as another host), and holds only printable ASCII without spaces
/// or backslashes (browsers turn `\` into `/`, control characters would split headers, and a
/// URL's other characters arrive percent-encoded). Anything else is `None`.
pub fn safe_return_to(candidate: &str) -> Option<&str> {
    let bytes = candidate.as_bytes();
    let acceptable = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && candidate.len() <= MAX_RETURN_TO_LENGTH
        && bytes.iter().all(|byte| byte.is_ascii_graphic() && *byte != b'\\');
    acceptable.then_some(candidate)
}

/// `return_to` when safe, else [`DEFAULT_RETURN_TO`].
pub fn return_to_or_default(candidate: Option<&str>) -> String {
    candidate.and_then(safe_return_to).unwrap_or(DEFAULT_RETURN_TO).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(candidate: &str, expected: Option<&str>) {
        assert_eq!(safe_return_to(candidate), expected, "{candidate:?}");
    }

    #[test]
    fn only_same_origin_paths_are_kept() {
        check("/", Some("/"));
        check("/account", Some("/account"));
        check(
            "/oauth2/authorize?client_id=a&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=x",
            Some(
                "/oauth2/authorize?client_id=a&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=x",
            ),
        );
        check("/consent#fragment", Some("/consent#fragment"));
        check("//evil.example", None);
        check("//evil.example/path", None);
        check("/\\evil.example", None);
        check("/a\\b", None);
        check("https://evil.example/", None);
        check("http:/evil.example", None);
        check("javascript:alert(1)", None);
        check("evil.example", None);
        check("", None);
        check(" /account", None);
        check("/\tevil", None);
        check("/a b", None);
        check("/caf\u{e9}", None);
        check("/caf%C3%A9", Some("/caf%C3%A9"));
        check("/\n/evil.example", None);
        check("/\r\nSet-Cookie: a=b", None);
        let long = format!("/{}", "a".repeat(MAX_RETURN_TO_LENGTH - 1));
        check(&long, Some(long.as_str()));
        check(&format!("{long}a"), None);
    }

    #[test]
    fn refused_values_fall_back_to_the_account_page() {
        assert_eq!(return_to_or_default(None), "/account");
        assert_eq!(return_to_or_default(Some("//evil.example")), "/account");
        assert_eq!(return_to_or_default(Some("/consent")), "/consent");
    }
}
