//! The stored shape of an API key, its owner, the scopes it may carry, and the principal a
//! verified key makes.

use std::collections::BTreeSet;

use crate::error::{DomainError, FieldIssue};
use crate::users::record::UserRecord;

/// API keys (personal access tokens): `gtk_` + 43 base62 + a 6-character base62 CRC-32, so
/// secret scanners can recognise a leaked one. There never was a legacy format; the legacy
/// prefix is one no key can have.
pub const API_KEY: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtk_", legacy_prefix: "ghk_" };
/// The data-key purpose of API keys' keyed digests.
pub const API_KEY_DIGEST_PURPOSE: &str = "api-key";
/// How many characters of a key are kept and shown in lists (`gtk_` and 8 random ones).
pub const PREFIX_CHARS: usize = 12;

/// The scopes of the Gatehouse API an API key can carry, with what each allows. Anything
/// else named after a Gatehouse resource is refused; every other `resource:action` is a
/// resource server's scope, carried as it is and only reported by introspection.
pub const GATEHOUSE_SCOPES: &[(&str, &str)] = &[
    ("profile:read", "GET /v1/me"),
    ("profile:write", "PATCH /v1/me"),
    ("sessions:read", "GET /v1/me/sessions"),
    ("organizations:read", "GET /v1/organizations, GET /v1/organizations/{id}"),
    ("organizations:write", "PATCH /v1/organizations/{id} (with org:update there)"),
];

/// Resources of the Gatehouse API: a scope on one of them must be in [`GATEHOUSE_SCOPES`].
/// Key management, passwords, MFA, passkeys and the admin API have no scope at all: keys are
/// never accepted there.
pub const GATEHOUSE_RESOURCES: &[&str] = &[
    "profile",
    "sessions",
    "organizations",
    "members",
    "roles",
    "invitations",
    "api_keys",
    "password",
    "mfa",
    "passkeys",
    "admin",
    "users",
    "clients",
];

const MAX_SCOPES: usize = 50;
const MAX_SCOPE_PART: usize = 64;

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyOwner {
    User(String),
    Organization(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub owner: ApiKeyOwner,
    /// The user who created it.
    pub created_by: String,
    pub name: String,
    /// The key's first [`PREFIX_CHARS`] characters.
    pub prefix: String,
    pub key_digest: Vec<u8>,
    /// Sorted, without duplicates.
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// For a personal key: the organization it acts in (its owner must stay a member).
    pub acting_organization_id: Option<String>,
}

impl ApiKeyRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| expires > now)
    }

    pub fn user_id(&self) -> Option<&str> {
        match &self.owner {
            ApiKeyOwner::User(id) => Some(id),
            ApiKeyOwner::Organization(_) => None,
        }
    }

    pub fn organization_id(&self) -> Option<&str> {
        match &self.owner {
            ApiKeyOwner::Organization(id) => Some(id),
            ApiKeyOwner::User(_) => None,
        }
    }

    /// The organization the key speaks for: an organization's own key's, or the one a personal
    /// key acts in (introspection's `org_id`).
    pub fn org_id(&self) -> Option<&str> {
        self.organization_id().or(self.acting_organization_id.as_deref())
    }

    /// The scopes as one space-separated string (RFC 7662's `scope`).
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// A verified API key presented as a bearer. Distinct from a session's `Principal`, so a
/// handler that takes a `Principal` never runs for a key; the few that accept keys take the
/// user through [`ApiKeyPrincipal::user_with_scope`].
#[derive(Debug, Clone)]
pub struct ApiKeyPrincipal {
    pub key: ApiKeyRecord,
    /// The owner of a personal key (not suspended when the key was checked); `None` for an
    /// organization key.
    pub user: Option<UserRecord>,
}

impl ApiKeyPrincipal {
    /// The key's user when the key carries `scope`; `insufficient_scope` otherwise, and for
    /// organization keys (they act for no user: they are for resource servers).
    pub fn user_with_scope(&self, scope: &str) -> Result<&UserRecord, DomainError> {
        match &self.user {
            Some(user) if self.key.scopes.iter().any(|held| held == scope) => Ok(user),
            Some(_) => {
                Err(DomainError::InsufficientScope(format!("This needs the scope {scope}.")))
            }
            None => Err(DomainError::InsufficientScope(
                "Organization API keys are for resource servers, not the Gatehouse API.".into(),
            )),
        }
    }
}

/// The answer for an operation that never accepts API keys.
pub fn keys_not_accepted() -> DomainError {
    DomainError::InsufficientScope(
        "API keys cannot be used here: sign in as the user (key management, password, MFA, \
         passkeys, sessions and the admin API need a user token)."
            .into(),
    )
}

fn is_scope_part(part: &str) -> bool {
    let mut bytes = part.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && part.len() <= MAX_SCOPE_PART
        && bytes.all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'))
}

/// Parses requested scopes: 1 to 50 `resource:action` strings (lowercase letters, digits,
/// `_`, `-`, `.`; each part at most 64 characters). A scope on a Gatehouse resource must be
/// one of [`GATEHOUSE_SCOPES`]; `organization` keys carry only resource-server scopes.
pub fn parse_scopes(
    requested: &[String],
    for_organization: bool,
    issues: &mut Vec<FieldIssue>,
) -> Option<Vec<String>> {
    if requested.is_empty() || requested.len() > MAX_SCOPES {
        issues.push(FieldIssue::new("scopes", "invalid", "1 to 50 scopes."));
        return None;
    }
    let mut scopes = BTreeSet::new();
    for scope in requested {
        let Some((resource, action)) = scope.split_once(':') else {
            issues.push(FieldIssue::new(
                "scopes",
                "invalid",
                format!("{scope:?} is not resource:action."),
            ));
            return None;
        };
        if !is_scope_part(resource) || !is_scope_part(action) {
            issues.push(FieldIssue::new(
                "scopes",
                "invalid",
                format!(
                    "{scope:?}: resource and action are lowercase letters, digits, '_', '-', '.'."
                ),
            ));
            return None;
        }
        if GATEHOUSE_RESOURCES.contains(&resource) {
            if !GATEHOUSE_SCOPES.iter().any(|(known, _)| known == scope) {
                issues.push(FieldIssue::new(
                    "scopes",
                    "unknown_scope",
                    format!("{scope:?} is not a scope of the Gatehouse API."),
                ));
                return None;
            }
            if for_organization {
                issues.push(FieldIssue::new(
                    "scopes",
                    "invalid",
                    "Organization keys carry only resource-server scopes.",
                ));
                return None;
            }
        }
        scopes.insert(scope.clone());
    }
    Some(scopes.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(requested: &[&str], for_organization: bool, expected: Option<&[&str]>) {
        let requested: Vec<String> = requested.iter().map(|s| (*s).to_owned()).collect();
        let mut issues = Vec::new();
        let parsed = parse_scopes(&requested, for_organization, &mut issues);
        let expected = expected.map(|scopes| scopes.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(parsed, expected, "{requested:?}");
        assert_eq!(issues.is_empty(), parsed.is_some());
    }

    #[test]
    fn scopes_are_validated() {
        check(&["profile:read"], false, Some(&["profile:read"]));
        check(
            &["orders:read", "profile:read", "orders:read"],
            false,
            Some(&["orders:read", "profile:read"]),
        );
        check(&["billing.v2:write-all"], true, Some(&["billing.v2:write-all"]));
        check(&[], false, None);
        check(&["profile"], false, None);
        check(&["Profile:read"], false, None);
        check(&["profile:raed"], false, None);
        check(&["api_keys:manage"], false, None);
        check(&["mfa:write"], false, None);
        check(&["profile:read"], true, None);
        check(&["orders:"], false, None);
        check(&[":read"], false, None);
        check(&["a:b:c"], false, None);
        check(&["orders read"], false, None);
        let many: Vec<String> = (0..51).map(|i| format!("r{i}:read")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        check(&many, false, None);
    }

    #[test]
    fn liveness_follows_revocation_and_expiry() {
        let key = ApiKeyRecord {
            id: "key".into(),
            owner: ApiKeyOwner::User("usr".into()),
            created_by: "usr".into(),
            name: "n".into(),
            prefix: "gtk_".into(),
            key_digest: vec![],
            scopes: vec![],
            created_at: 0,
            expires_at: Some(100),
            last_used_at: None,
            revoked_at: None,
            acting_organization_id: None,
        };
        assert!(key.is_live(99));
        assert!(!key.is_live(100));
        assert!(!ApiKeyRecord { revoked_at: Some(5), ..key.clone() }.is_live(10));
        assert!(ApiKeyRecord { expires_at: None, ..key }.is_live(i64::MAX));
    }
}
