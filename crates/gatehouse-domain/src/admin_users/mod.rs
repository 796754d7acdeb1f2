//! `AdminUserService`: admin operations on users — create, read, list, update, suspend,
//! unlock, delete, bulk import. Each takes an [`AdminPrincipal`], so none can run unchecked,
//! and each is recorded in the audit trail with the admin as actor.

use std::sync::Arc;

use gatehouse_crypto::HashingPool;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FieldIssue, Taken};
use crate::passwords::PasswordService;
use crate::principal::{AdminPrincipal, RequestContext};
use crate::sessions::record::RevokeReason;
use crate::unit_of_work::UnitOfWork;
use crate::users::directory::UserDirectory;
use crate::users::names::{NewIdentity, parse_image_url, parse_name};
use crate::users::record::{SYSTEM_ROLE_ADMIN, UserChange, UserQuery, UserRecord};
use crate::users::store::UserStore;
use crate::users::{Email, UserView, Username};

/// A user created by an admin or the CLI.
#[derive(Debug, Clone, Default)]
pub struct NewUserByAdmin {
    pub email: String,
    /// Optional: a user without one signs in by other means (later: magic links, passkeys).
    pub password: Option<String>,
    /// A hash imported from another system (bcrypt, scrypt, PBKDF2-SHA256/512 PHC, Django's
    /// `pbkdf2_sha256$…`, or Argon2 made elsewhere), upgraded to our Argon2id at the next
    /// sign-in. Exclusive with `password`.
    pub password_hash: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email_verified: bool,
    pub admin: bool,
}

/// What an admin may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AdminUserUpdate {
    pub username: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub image_url: Option<Option<String>>,
    pub public_metadata: Option<serde_json::Value>,
    pub private_metadata: Option<serde_json::Value>,
    pub email_verified: Option<bool>,
    pub admin: Option<bool>,
}

pub struct UserPage {
    pub users: Vec<UserView>,
    pub next_cursor: Option<String>,
}

const MAX_METADATA_BYTES: usize = 8 * 1024;

fn metadata_text(
    value: serde_json::Value,
    field: &str,
    issues: &mut Vec<FieldIssue>,
) -> Option<String> {
    let text = value.to_string();
    if !value.is_object() || text.len() > MAX_METADATA_BYTES {
        issues.push(FieldIssue::new(field, "invalid", "A JSON object of at most 8 KiB."));
        return None;
    }
    Some(text)
}

pub struct AdminUserService {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) hashing: HashingPool,
    pub(crate) passwords: Arc<PasswordService>,
    pub(crate) directory: Arc<UserDirectory>,
    /// The "your account was deleted" email.
    pub(crate) notices: Arc<crate::notify::Notices>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl AdminUserService {
    fn admin_event(
        &self,
        admin: &AdminPrincipal,
        action: &str,
        user_id: &str,
        context: &RequestContext,
    ) -> AuditEvent {
        AuditEvent::new(action, admin.actor(), context, self.clock.now()).target("user", user_id)
    }

    fn admin_view(&self, user: &UserRecord) -> Result<UserView, DomainError> {
        self.directory.admin_view(user)
    }

    pub async fn create(
        &self,
        admin: &AdminPrincipal,
        request: NewUserByAdmin,
        context: &RequestContext,
    ) -> Result<UserView, DomainError> {
        let mut issues = Vec::new();
        let NewIdentity { email, username, first_name, last_name } = NewIdentity::parse(
            &request.email,
            request.username.as_deref(),
            request.first_name.as_deref(),
            request.last_name.as_deref(),
            &mut issues,
        );
        if request.password.is_some() && request.password_hash.is_some() {
            issues.push(FieldIssue::new(
                "password_hash",
                "exclusive",
                "Give a password or a password hash, not both.",
            ));
        }
        let imported_hash = match &request.password_hash {
            Some(hash) => match gatehouse_crypto::password::legacy::validate_import(hash) {
                Ok(_) => Some(hash.clone()),
                Err(error) => {
                    issues.push(FieldIssue::new(
                        "password_hash",
                        "unsupported_hash",
                        error.to_string(),
                    ));
                    None
                }
            },
            None => None,
        };
        match &request.password {
            Some(password) => {
                let inputs: Vec<&str> = email.iter().map(Email::as_str).collect();
                self.passwords
                    .check_new_password(password, "password", &inputs, &[], issues)
                    .await?;
            }
            None if !issues.is_empty() => return Err(DomainError::Validation(issues)),
            None => {}
        }
        let Some(email) = email else {
            return Err(DomainError::Internal("email missing after validation".into()));
        };
        let email_digest = self.directory.email_digest(&email);
        if self.users.user_by_email_digest(&email_digest).await?.is_some() {
            return Err(DomainError::Taken(Taken::Email));
        }
        let password_hash = match request.password {
            Some(password) => Some(self.hashing.hash(password.into()).await?),
            None => imported_hash,
        };
        let now = self.clock.now();
        let user = UserRecord {
            username: username.map(|name| name.as_str().to_owned()),
            first_name,
            last_name,
            email_verified_at: request.email_verified.then_some(now),
            password_changed_at: password_hash.as_ref().map(|_| now),
            password_hash,
            system_role: request.admin.then(|| SYSTEM_ROLE_ADMIN.to_owned()),
            ..self.directory.new_account(&email, now)?
        };
        let event = self.admin_event(admin, "user.created", &user.id, context).metadata(
            serde_json::json!({ "imported_password_hash": request.password_hash.is_some() }),
        );
        self.users
            .insert_user(&user, &UnitOfWork::events(vec![event]))
            .await
            .map_err(DomainError::from_taken)?;
        self.admin_view(&user)
    }

    pub async fn get(
        &self,
        _admin: &AdminPrincipal,
        user_id: &str,
    ) -> Result<UserView, DomainError> {
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        self.admin_view(&user)
    }

    /// Users in creation order, `limit` at a time; `email` narrows to the exact address (emails
    /// are encrypted, so search is by their blind index, not by substring).
    pub async fn list(
        &self,
        _admin: &AdminPrincipal,
        cursor: Option<String>,
        limit: u32,
        email: Option<&str>,
    ) -> Result<UserPage, DomainError> {
        let email_digest = match email {
            Some(text) => match Email::parse(text, "email") {
                Ok(email) => Some(self.directory.email_digest(&email)),
                Err(issue) => return Err(DomainError::Validation(vec![issue])),
            },
            None => None,
        };
        let limit = limit.clamp(1, 100);
        let mut users = self
            .users
            .list_users(&UserQuery { after: cursor, email_digest, limit: limit + 1 })
            .await?;
        let next_cursor = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|user| user.id.clone())
        } else {
            None
        };
        let users = users.iter().map(|user| self.admin_view(user)).collect::<Result<_, _>>()?;
        Ok(UserPage { users, next_cursor })
    }

    /// The account a search names: an id (`usr_…`), an email address (exact, by its blind
    /// index) or a username. None when nothing matches or the text is none of those.
    pub async fn find(
        &self,
        admin: &AdminPrincipal,
        text: &str,
    ) -> Result<Option<UserView>, DomainError> {
        let text = text.trim();
        let user = if text.starts_with("usr_") {
            self.users.user_by_id(text).await?
        } else if text.contains('@') {
            return Ok(self.list(admin, None, 1, Some(text)).await?.users.into_iter().next());
        } else {
            match crate::users::username::Username::parse(text, "q") {
                Ok(username) => self.users.user_by_username(username.as_str()).await?,
                Err(_) => None,
            }
        };
        user.map(|user| self.admin_view(&user)).transpose()
    }

    pub async fn update(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        update: AdminUserUpdate,
        context: &RequestContext,
    ) -> Result<UserView, DomainError> {
        let original = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let mut user = original.clone();
        let mut issues = Vec::new();
        if let Some(username) = update.username {
            user.username = username
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .and_then(|name| {
                    Username::parse(name, "username").map_err(|issue| issues.push(issue)).ok()
                })
                .map(|name| name.as_str().to_owned());
        }
        if let Some(first_name) = update.first_name {
            user.first_name = parse_name(first_name.as_deref(), "first_name", &mut issues);
        }
        if let Some(last_name) = update.last_name {
            user.last_name = parse_name(last_name.as_deref(), "last_name", &mut issues);
        }
        if let Some(image_url) = update.image_url {
            user.image_url = image_url.as_deref().and_then(|url| parse_image_url(url, &mut issues));
        }
        if let Some(metadata) = update.public_metadata {
            user.public_metadata =
                metadata_text(metadata, "public_metadata", &mut issues).unwrap_or_default();
        }
        if let Some(metadata) = update.private_metadata {
            user.private_metadata =
                metadata_text(metadata, "private_metadata", &mut issues).unwrap_or_default();
        }
        if !issues.is_empty() {
            return Err(DomainError::Validation(issues));
        }
        let now = self.clock.now();
        if let Some(verified) = update.email_verified {
            user.email_verified_at =
                if verified { original.email_verified_at.or(Some(now)) } else { None };
        }
        if let Some(admin_role) = update.admin {
            user.system_role = admin_role.then(|| SYSTEM_ROLE_ADMIN.to_owned());
        }
        if user.username != original.username
            && let Some(username) = &user.username
            && self.users.user_by_username(username).await?.is_some()
        {
            return Err(DomainError::Taken(Taken::Username));
        }
        user.updated_at = now;
        let event = self.admin_event(admin, "user.updated", user_id, context);
        // Only what this update changed: a concurrent suspension, password reset or sign-in
        // keeps what it wrote.
        let change = UserChange::between(&original, &user);
        self.users
            .update_user(user_id, &change, &UnitOfWork::events(vec![event]))
            .await
            .map_err(DomainError::from_taken)?;
        self.admin_view(&user)
    }

    /// Suspends (revoking every session, so tokens stop at once) or lifts a suspension.
    pub async fn set_suspended(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        suspended: bool,
        context: &RequestContext,
    ) -> Result<UserView, DomainError> {
        let mut user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let mut change = UserChange { updated_at: Some(now), ..UserChange::default() };
        if suspended {
            change.suspended_at = Some(user.suspended_at.or(Some(now)));
            change.apply(&mut user);
            let event = self.admin_event(admin, "user.suspended", user_id, context);
            self.users
                .update_user_revoking_sessions(
                    user_id,
                    &change,
                    RevokeReason::UserSuspended,
                    &UnitOfWork::events(vec![event]),
                )
                .await?;
        } else {
            change.suspended_at = Some(None);
            change.apply(&mut user);
            let event = self.admin_event(admin, "user.unsuspended", user_id, context);
            // Unsuspending also calls off a deletion the user scheduled (the grace period).
            let work = UnitOfWork {
                account_deletion: Some(crate::unit_of_work::AccountDeletionChange::Cancel {
                    user_id: user_id.to_owned(),
                }),
                ..UnitOfWork::events(vec![event])
            };
            self.users.update_user(user_id, &change, &work).await?;
        }
        self.admin_view(&user)
    }

    /// Clears a lockout and the failure count.
    pub async fn unlock(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<UserView, DomainError> {
        let mut user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let change = UserChange {
            unlock: true,
            updated_at: Some(self.clock.now()),
            ..UserChange::default()
        };
        change.apply(&mut user);
        let event = self.admin_event(admin, "admin.user_unlocked", user_id, context);
        self.users.update_user(user_id, &change, &UnitOfWork::events(vec![event])).await?;
        self.admin_view(&user)
    }

    /// Deletes the user and, through the foreign keys, their sessions and history. The audit
    /// trail keeps the record of the deletion, and loses the user's personal fields (IP
    /// addresses, user agents, addresses in metadata) shortly after: the chainer erases them.
    pub async fn delete(
        &self,
        admin: &AdminPrincipal,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let now = self.clock.now();
        let mut work =
            UnitOfWork::events(vec![self.admin_event(admin, "user.deleted", user_id, context)]);
        work.outbox.extend(self.notices.account_deleted(&user, context, now)?);
        if !self.users.delete_user(user_id, &work, now).await? {
            return Err(DomainError::NotFound);
        }
        self.notices.wake();
        Ok(())
    }
}

/// One user of a bulk import (a line of `gatehouse user import`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedUser {
    pub email: String,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A hash from another system (see [`NewUserByAdmin::password_hash`]); none: no password.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
}

/// What a bulk import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: u64,
    /// Valid rows whose email or username already existed.
    pub skipped: u64,
    /// (position in the batch, the problem) of rows that were not valid.
    pub invalid: Vec<(usize, String)>,
}

impl AdminUserService {
    /// Imports a batch of users in one transaction: invalid rows are reported, rows whose
    /// email or username exists are skipped, one audit event records the batch. Passwords are
    /// only accepted as hashes (no Argon2id work per row, so a million users import quickly);
    /// they are upgraded at each user's first sign-in.
    pub async fn import(
        &self,
        admin: &AdminPrincipal,
        rows: Vec<ImportedUser>,
        context: &RequestContext,
    ) -> Result<ImportReport, DomainError> {
        let now = self.clock.now();
        let mut report = ImportReport::default();
        let mut records = Vec::with_capacity(rows.len());
        for (position, row) in rows.into_iter().enumerate() {
            let mut issues = Vec::new();
            let NewIdentity { email, username, first_name, last_name } = NewIdentity::parse(
                &row.email,
                row.username.as_deref(),
                row.first_name.as_deref(),
                row.last_name.as_deref(),
                &mut issues,
            );
            if let Some(hash) = &row.password_hash
                && gatehouse_crypto::password::legacy::validate_import(hash).is_err()
                && self.hashing.needs_rehash(hash)
            {
                issues.push(FieldIssue::new(
                    "password_hash",
                    "unsupported_hash",
                    "not a supported password hash",
                ));
            }
            let Some(email) = email.filter(|_| issues.is_empty()) else {
                let problems: Vec<String> = issues
                    .iter()
                    .map(|issue| format!("{}: {}", issue.field, issue.message))
                    .collect();
                report.invalid.push((position, problems.join("; ")));
                continue;
            };
            records.push(UserRecord {
                username: username.map(|name| name.as_str().to_owned()),
                first_name,
                last_name,
                email_verified_at: row.email_verified.then_some(now),
                password_changed_at: row.password_hash.as_ref().map(|_| now),
                password_hash: row.password_hash,
                ..self.directory.new_account(&email, now)?
            });
        }
        if records.is_empty() {
            return Ok(report);
        }
        let event = AuditEvent::new("admin.users_imported", admin.actor(), context, now)
            .metadata(serde_json::json!({ "rows": records.len() }));
        // Each imported user is a `user.created` happening of its own (webhooks see it).
        let created: Vec<AuditEvent> = records
            .iter()
            .map(|user| {
                AuditEvent::new("user.created", admin.actor(), context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "via": "import" }))
            })
            .collect();
        report.imported =
            self.users.insert_users_skipping_existing(&records, &created, &[event]).await?;
        report.skipped = records.len() as u64 - report.imported;
        Ok(report)
    }
}
