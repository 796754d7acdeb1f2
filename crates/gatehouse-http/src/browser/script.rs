//! The one page script (`assets/passkeys.js`, the WebAuthn ceremonies), embedded in the binary
//! and served same-origin at `/assets/passkeys.js?v=<fingerprint>`. A page that needs it is
//! answered with a CSP that allows exactly this file by its SHA-256 (`script-src 'sha256-…'`,
//! with the same value as the tag's `integrity`) and same-origin fetches (`connect-src
//! 'self'`); every other page keeps the script-less CSP.

use axum::http::HeaderValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gatehouse_crypto::digest::content_sha256;
use minijinja::{Value, context};

const PASSKEYS_JS: &str = include_str!("assets/passkeys.js");

/// The script, its URL and the CSP of the pages that load it.
pub(crate) struct PageScript {
    pub(crate) source: &'static str,
    /// `/assets/passkeys.js?v=<first 16 hex digits of its SHA-256>`.
    src: String,
    /// `sha256-<base64>`: the tag's `integrity` and, quoted, the CSP's `script-src`.
    integrity: String,
    pub(crate) content_security_policy: HeaderValue,
}

impl PageScript {
    /// The passkeys script under `page_csp` (the pages' script-less CSP) widened for it.
    pub(crate) fn passkeys(page_csp: &str) -> Result<PageScript, String> {
        let digest = content_sha256(PASSKEYS_JS.as_bytes());
        let integrity = format!("sha256-{}", STANDARD.encode(digest));
        let version: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
        let csp = page_csp.replacen(
            "default-src 'none';",
            &format!("default-src 'none'; script-src '{integrity}'; connect-src 'self';"),
            1,
        );
        Ok(PageScript {
            source: PASSKEYS_JS,
            src: format!("/assets/passkeys.js?v={version}"),
            integrity,
            content_security_policy: HeaderValue::from_str(&csp)
                .map_err(|_| "the page script's CSP cannot be a header".to_owned())?,
        })
    }

    /// What `base.html` prints as the `<script>` tag.
    pub(crate) fn tag(&self) -> Value {
        context! { src => self.src.clone(), integrity => self.integrity.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_allows_exactly_this_script_and_same_origin_fetches() {
        let script = PageScript::passkeys("default-src 'none'; style-src 'self'").unwrap();
        let csp = script.content_security_policy.to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"), "{csp}");
        assert!(csp.contains("; connect-src 'self'; style-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let tag = script.tag();
        let integrity = tag.get_attr("integrity").unwrap().to_string();
        assert!(csp.contains(&format!("'{integrity}'")), "{csp} / {integrity}");
        let expected = STANDARD.encode(content_sha256(PASSKEYS_JS.as_bytes()));
        assert_eq!(integrity, format!("sha256-{expected}"));
        assert!(tag.get_attr("src").unwrap().to_string().starts_with("/assets/passkeys.js?v="));
    }
}
