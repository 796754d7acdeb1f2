//! The stored shapes of organizations, their members and custom roles, and the permission
//! model: `resource:action` strings; built-in roles `owner`, `admin`, `member`.

use std::collections::BTreeSet;

use crate::error::FieldIssue;

/// The permissions that govern an organization itself. A role holding one of these can only
/// be granted (or given to a custom role) by someone who holds it; other `resource:action`
/// permissions are the application's own, for holders of `roles:manage` to hand out.
pub const SYSTEM_PERMISSIONS: [&str; 8] = [
    "org:read",
    "org:update",
    "org:delete",
    "members:read",
    "members:manage",
    "invitations:manage",
    "roles:manage",
    "api_keys:manage",
];

/// The built-in roles: not editable, not deletable.
pub const OWNER: &str = "owner";
pub const ADMIN: &str = "admin";
pub const MEMBER: &str = "member";

/// The permissions of a built-in role (`None` for any other key).
pub fn built_in_permissions(role: &str) -> Option<BTreeSet<String>> {
    let list: &[&str] = match role {
        OWNER => &SYSTEM_PERMISSIONS,
        ADMIN => &[
            "org:read",
            "org:update",
            "members:read",
            "members:manage",
            "invitations:manage",
            "roles:manage",
            "api_keys:manage",
        ],
        MEMBER => &["org:read", "members:read"],
        _ => return None,
    };
    Some(list.iter().map(|permission| (*permission).to_owned()).collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    /// `org_…`
    pub id: String,
    pub name: String,
    pub slug: String,
    pub logo_url: Option<String>,
    /// JSON object text, readable by members.
    pub public_metadata: String,
    /// JSON object text, for holders of `org:update` and admins only.
    pub private_metadata: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub organization_id: String,
    pub user_id: String,
    /// A built-in role or a custom role's key.
    pub role: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A custom role of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub organization_id: String,
    pub key: String,
    pub name: String,
    pub permissions: BTreeSet<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A page of members: the membership and the member's account.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub membership: MembershipRecord,
    pub user: crate::users::record::UserRecord,
}

/// Where a page of a newest-first list starts: after this (creation time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: i64,
    pub id: String,
}

/// A slug: 2–48 characters, lowercase letters and digits in words joined by single hyphens.
pub fn parse_slug(text: &str, issues: &mut Vec<FieldIssue>) -> Option<String> {
    let slug = text.trim();
    let valid = (2..=48).contains(&slug.len())
        && slug.split('-').all(|word| {
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !valid {
        issues.push(FieldIssue::new(
            "slug",
            "invalid_slug",
            "2 to 48 lowercase letters and digits, words joined by single hyphens.",
        ));
        return None;
    }
    Some(slug.to_owned())
}

/// A `resource:action` permission: lowercase letters, digits, `_` and `-` on each side.
pub fn is_permission(text: &str) -> bool {
    let part = |side: &str| {
        !side.is_empty()
            && side.len() <= 40
            && side
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    matches!(text.split_once(':'), Some((resource, action)) if part(resource) && part(action))
}

/// A custom role key: 1–40 lowercase letters, digits, `_` or `-`, not a built-in role's.
pub fn parse_role_key(text: &str, issues: &mut Vec<FieldIssue>) -> Option<String> {
    let key = text.trim();
    let valid = (1..=40).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && built_in_permissions(key).is_none();
    if !valid {
        issues.push(FieldIssue::new(
            "key",
            "invalid_role_key",
            "1 to 40 lowercase letters, digits, '_' or '-', and not owner, admin or member.",
        ));
        return None;
    }
    Some(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_hyphens() {
        for good in ["acme", "acme-corp", "a1", "team-42-x"] {
            assert_eq!(parse_slug(good, &mut Vec::new()).as_deref(), Some(good));
        }
        for bad in
            ["A", "Acme", "acme--corp", "-acme", "acme-", "ac me", "é-x", "x", &"a".repeat(49)]
        {
            let mut issues = Vec::new();
            assert!(parse_slug(bad, &mut issues).is_none(), "{bad}");
            assert_eq!(issues[0].code, "invalid_slug");
        }
    }

    #[test]
    fn permissions_are_resource_action_pairs() {
        assert!(is_permission("org:read"));
        assert!(is_permission("invoices:approve_large"));
        for bad in ["org", "org:", ":read", "Org:read", "org:read:x", "org read"] {
            assert!(!is_permission(bad), "{bad}");
        }
    }

    #[test]
    fn owners_hold_every_system_permission_and_admins_all_but_delete() {
        let owner = built_in_permissions(OWNER).unwrap_or_default();
        let admin = built_in_permissions(ADMIN).unwrap_or_default();
        assert_eq!(owner.len(), SYSTEM_PERMISSIONS.len());
        assert!(!admin.contains("org:delete"));
        assert!(admin.is_subset(&owner));
        assert!(built_in_permissions(MEMBER).unwrap_or_default().is_subset(&admin));
    }
}
