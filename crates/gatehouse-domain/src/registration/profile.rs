//! The signed-in user's own profile: reading and updating it.

use crate::audit::AuditEvent;
use crate::error::{DomainError, Taken};
use crate::principal::{Actor, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::names::{parse_image_url, parse_name};
use crate::users::record::{UserChange, UserRecord};
use crate::users::{UserView, Username};

use super::RegistrationService;

/// A partial update: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub username: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub image_url: Option<Option<String>>,
}

impl RegistrationService {
    /// The user's own view (for a session, or an API key with `profile:read`).
    pub fn me(&self, user: &UserRecord) -> Result<UserView, DomainError> {
        self.directory.view(user)
    }

    /// Applies the given fields; a username already taken answers `username_taken`. `user` is
    /// the caller's (a session's, or an API key's with `profile:write`): the change is the
    /// user's own.
    pub async fn update_profile(
        &self,
        current: &UserRecord,
        update: ProfileUpdate,
        context: &RequestContext,
    ) -> Result<UserView, DomainError> {
        let mut user = current.clone();
        let mut issues = Vec::new();
        let mut changed = Vec::new();
        if let Some(username) = update.username {
            user.username = match username.as_deref().map(str::trim).filter(|name| !name.is_empty())
            {
                Some(name) => Username::parse(name, "username")
                    .map_err(|issue| issues.push(issue))
                    .ok()
                    .map(|name| name.as_str().to_owned()),
                None => None,
            };
            changed.push("username");
        }
        if let Some(first_name) = update.first_name {
            user.first_name = parse_name(first_name.as_deref(), "first_name", &mut issues);
            changed.push("first_name");
        }
        if let Some(last_name) = update.last_name {
            user.last_name = parse_name(last_name.as_deref(), "last_name", &mut issues);
            changed.push("last_name");
        }
        if let Some(image_url) = update.image_url {
            user.image_url = image_url.as_deref().and_then(|url| parse_image_url(url, &mut issues));
            changed.push("image_url");
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        if user.username != current.username
            && let Some(username) = &user.username
            && self.users.user_by_username(username).await?.is_some()
        {
            return Err(DomainError::Taken(Taken::Username));
        }
        let now = self.clock.now();
        user.updated_at = now;
        let event = AuditEvent::new("user.updated", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id)
            .metadata(serde_json::json!({ "fields": changed }));
        // Only the fields this update changed: a role change, suspension or password reset
        // made since the principal was read is kept.
        let change = UserChange::between(current, &user);
        self.users
            .update_user(&user.id, &change, &UnitOfWork::events(vec![event]))
            .await
            .map_err(DomainError::from_taken)?;
        self.directory.view(&user)
    }

    /// Deletes the signed-in user's own account (the caller has checked the user's presence:
    /// a recent sign-in or a proof given now). Audited `user.deleted` with the user as actor;
    /// everything the account owns goes with it, and the audit trail's erasure follows.
    pub async fn delete_own_account(
        &self,
        principal: &crate::principal::Principal,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        let now = self.clock.now();
        let event = AuditEvent::new("user.deleted", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id)
            .metadata(serde_json::json!({ "by": "self" }));
        let mut work = UnitOfWork::events(vec![event]);
        work.outbox.extend(self.notices.account_deleted(user, context, now)?);
        if !self.users.delete_user(&user.id, &work, now).await? {
            return Err(DomainError::NotFound);
        }
        self.notices.wake();
        Ok(())
    }
}
