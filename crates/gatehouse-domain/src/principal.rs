//! Who is asking, and from where: the verified [`Principal`] of a bearer or browser session,
//! the [`AdminPrincipal`] that alone unlocks admin operations, the [`Actor`] an audit event
//! names, and the [`RequestContext`] every operation receives.
//!
//! Invariant: this module sits low in the tree. Every service may use it; it uses no service,
//! only the stored records of a user and a session.

use serde::Serialize;

use crate::error::DomainError;
use crate::sessions::record::SessionRecord;
use crate::users::record::{SYSTEM_ROLE_ADMIN, UserRecord};

/// Where a request came from, for the audit trail and session records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The `x-request-id` of the HTTP request, to correlate logs and events.
    pub request_id: Option<String>,
    /// The caller's preferred language (`en`, `fr`, ...), for the messages a request causes.
    pub locale: Option<String>,
    /// The key (RFC 7638 thumbprint) of the DPoP proof the HTTP layer verified for this
    /// request: a first-party session opened or refreshed with it is bound to that key.
    pub dpop_jkt: Option<String>,
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    Anonymous,
    User(String),
    AdminKey(String),
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Anonymous => "anonymous",
            Actor::User(_) => "user",
            Actor::AdminKey(_) => "admin_key",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User(id) | Actor::AdminKey(id) => Some(id),
            Actor::Anonymous | Actor::System => None,
        }
    }
}

/// A verified bearer: the token was valid, its session is active and its user not suspended.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRecord,
    pub session: SessionRecord,
}

impl RequestContext {
    /// The device a request came from (user agent, ip), as a session records it.
    pub fn device(&self) -> (Option<String>, Option<String>) {
        (self.user_agent.clone(), self.ip.clone())
    }
}

impl Principal {
    /// The actor of what this principal does.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.id.clone())
    }
}

/// Proof that the caller may perform admin operations. Only admin-key authentication
/// (`AdminKeyService::authenticate`), an admin user's principal ([`Self::from_user`]) and the
/// CLI ([`Self::system`]) make one.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    actor: Actor,
}

impl AdminPrincipal {
    /// An admin user (system role `admin`) acting through their own session.
    pub fn from_user(principal: &Principal) -> Result<AdminPrincipal, DomainError> {
        if principal.user.system_role.as_deref() == Some(SYSTEM_ROLE_ADMIN) {
            Ok(AdminPrincipal { actor: principal.actor() })
        } else {
            Err(DomainError::Forbidden(
                "the admin API needs an admin API key or an admin user".into(),
            ))
        }
    }

    /// The operator at the command line.
    pub fn system() -> AdminPrincipal {
        AdminPrincipal { actor: Actor::System }
    }

    /// An admin API key that authenticated (made by the admin-key service only).
    pub(crate) fn admin_key(key_id: String) -> AdminPrincipal {
        AdminPrincipal { actor: Actor::AdminKey(key_id) }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}
