//! The claims of a verified token, typed as Gatehouse issues them (RFC 9068 access tokens with
//! organization claims; introspection answers for API keys), with the checks resource servers
//! make on them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::Forbidden;

/// What a verified token says. Claims Gatehouse does not define land in [`Claims::extra`].
///
/// For a JWT every registered claim was checked before you see this (`iss`, `aud`, `exp`,
/// `nbf`); for an introspected token the issuer's answer was `active: true` and the same
/// checks ran on the members it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user, the OAuth client (client_credentials) or the organization (its API keys).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audiences, whether the token wrote one string or an array.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The Gatehouse session the token belongs to; absent for client_credentials tokens and
    /// API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated scopes; see [`Claims::has_scope`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The OAuth client the token was issued to; absent for first-party sign-in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The active organization, as it was when the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<String>,
    /// The user's role in that organization (`owner`, `admin`, `member` or a custom role key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// The permissions of that role; see [`Claims::has_permission`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_permissions: Option<Vec<String>>,
    /// The acting party of a delegated token (RFC 8693 section 4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The key the token is bound to (RFC 7800; `jkt` for DPoP, RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Every other claim (`auth_time`, `amr`, an introspection answer's `token_type`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `act` claim: who acts on behalf of the subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    /// A chain of earlier actors, and anything else the issuer wrote.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `cnf` claim: the proof-of-possession key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of a DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 thumbprint of a client certificate (RFC 8705).
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The granted scopes, in the order the token lists them.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or_default().split_ascii_whitespace()
    }

    /// Whether `scope` was granted (exact match of one space-separated entry).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// Whether the token acts in the organization with this id (`org_id`, not the slug: slugs
    /// can be changed and reused).
    pub fn in_organization(&self, organization_id: &str) -> bool {
        self.org_id.as_deref() == Some(organization_id)
    }

    /// Whether the token's organization role has `permission` (such as `members:read`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.org_permissions.as_deref().unwrap_or_default().iter().any(|held| held == permission)
    }

    /// `Ok` when `scope` was granted, else [`Forbidden::InsufficientScope`] (with the `axum`
    /// feature, a 403 answer with `WWW-Authenticate: Bearer error="insufficient_scope"`).
    pub fn require_scope(&self, scope: &str) -> Result<(), Forbidden> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Forbidden::InsufficientScope(scope.to_owned()))
        }
    }

    /// `Ok` when the token acts in `organization_id` and its role there has `permission`.
    pub fn require_permission(
        &self,
        organization_id: &str,
        permission: &str,
    ) -> Result<(), Forbidden> {
        if !self.in_organization(organization_id) {
            return Err(Forbidden::WrongOrganization);
        }
        if !self.has_permission(permission) {
            return Err(Forbidden::PermissionDenied(permission.to_owned()));
        }
        Ok(())
    }
}

/// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        None,
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
        Some(OneOrMany::None) | None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn scopes_match_whole_entries_only() {
        let claims = claims(json!({ "sub": "usr_1", "scope": "orders:read  profile" }));
        assert!(claims.has_scope("orders:read") && claims.has_scope("profile"));
        assert!(!claims.has_scope("orders") && !claims.has_scope("orders:read profile"));
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["orders:read", "profile"]);
        assert_eq!(
            claims.require_scope("orders:write"),
            Err(Forbidden::InsufficientScope("orders:write".into()))
        );
        assert!(!self::claims(json!({ "sub": "x" })).has_scope(""));
    }

    #[test]
    fn organization_checks_need_the_id_and_the_permission() {
        let claims = claims(json!({
            "sub": "usr_1", "org_id": "org_1", "org_slug": "acme", "org_role": "member",
            "org_permissions": ["members:read", "org:read"]
        }));
        assert!(claims.in_organization("org_1") && !claims.in_organization("acme"));
        assert!(claims.has_permission("members:read") && !claims.has_permission("members:manage"));
        assert_eq!(claims.require_permission("org_1", "org:read"), Ok(()));
        assert_eq!(
            claims.require_permission("org_2", "org:read"),
            Err(Forbidden::WrongOrganization)
        );
        assert_eq!(
            claims.require_permission("org_1", "members:manage").map_err(|error| error.code()),
            Err("permission_denied")
        );
    }

    #[test]
    fn audience_delegation_confirmation_and_extra_claims_are_read() {
        let claims = claims(json!({
            "sub": "usr_1", "aud": "https://api.example", "amr": ["pwd"],
            "act": { "sub": "svc_1", "act": { "sub": "svc_0" } },
            "cnf": { "jkt": "thumb" }, "token_type": "api_key", "exp": null
        }));
        assert_eq!(claims.aud, ["https://api.example"]);
        assert_eq!(claims.act.as_ref().unwrap().sub, "svc_1");
        assert_eq!(claims.act.as_ref().unwrap().extra["act"]["sub"], "svc_0");
        assert_eq!(claims.cnf.as_ref().unwrap().jkt.as_deref(), Some("thumb"));
        assert_eq!(claims.extra["amr"], json!(["pwd"]));
        assert_eq!(claims.extra["token_type"], "api_key");
        assert_eq!(claims.exp, None);
        let many = self::claims(json!({ "sub": "x", "aud": ["a", "b"] }));
        assert_eq!(many.aud, ["a", "b"]);
    }
}
