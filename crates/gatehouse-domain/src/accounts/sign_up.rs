//! Sign-up: validate everything at once, refuse taken identifiers, hash on the bounded pool,
//! store the user with its audit event, and sign in unless verification is required.

use crate::audit::{Actor, AuditEvent, RequestContext};
use crate::error::{DomainError, FieldIssue};
use crate::notify::{Effects, TokenPurpose};

use super::{AccountService, Email, Tokens, UserView, Username, taken_from_conflict};
use crate::users::UserRecord;

const MAX_NAME_LENGTH: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Trims a name; empty means absent; too long is an issue.
pub(super) fn parse_name(
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

impl AccountService {
    /// Creates an account. Returns tokens too unless email verification or MFA is required.
    pub async fn sign_up(
        &self,
        request: SignUp,
        context: &RequestContext,
    ) -> Result<(UserView, Option<Tokens>), DomainError> {
        let mut issues = Vec::new();
        let email = Email::parse(&request.email, "email").map_err(|issue| issues.push(issue)).ok();
        let username =
            request.username.as_deref().filter(|name| !name.trim().is_empty()).and_then(|name| {
                Username::parse(name, "username").map_err(|issue| issues.push(issue)).ok()
            });
        let first_name = parse_name(request.first_name.as_deref(), "first_name", &mut issues);
        let last_name = parse_name(request.last_name.as_deref(), "last_name", &mut issues);
        let mut inputs: Vec<&str> = Vec::new();
        if let Some(email) = &email {
            inputs.extend([email.as_str(), email.local_part()]);
        }
        inputs.extend(username.as_ref().map(Username::as_str));
        inputs.extend(first_name.as_deref());
        inputs.extend(last_name.as_deref());
        self.check_new_password(&request.password, "password", &inputs, &[], issues).await?;
        let (Some(email), username) = (email, username) else {
            return Err(DomainError::Internal("email missing after validation".into()));
        };

        let email_digest = self.email_digest(&email);
        if self.store.user_by_email_digest(&email_digest).await?.is_some() {
            return Err(DomainError::Taken("email"));
        }
        if let Some(username) = &username
            && self.store.user_by_username(username.as_str()).await?.is_some()
        {
            return Err(DomainError::Taken("username"));
        }

        let password_hash = self.hashing.hash(request.password.into()).await?;
        let now = self.clock.now();
        let id = gatehouse_crypto::new_id("usr");
        let user = UserRecord {
            email_ciphertext: Some(self.seal_email(&id, &email)?),
            email_digest: Some(email_digest),
            username: username.map(|name| name.as_str().to_owned()),
            first_name,
            last_name,
            image_url: None,
            email_verified_at: None,
            password_hash: Some(password_hash),
            password_changed_at: Some(now),
            failed_sign_in_attempts: 0,
            locked_until: None,
            suspended_at: None,
            last_sign_in_at: None,
            public_metadata: "{}".into(),
            private_metadata: "{}".into(),
            system_role: None,
            created_at: now,
            updated_at: now,
            id,
        };
        let event = AuditEvent::new("user.signed_up", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id);
        let (tokens, outbox) =
            self.link_email(&user, TokenPurpose::VerifyEmail, "/verify-email", &[], context, now)?;
        let effects = Effects { events: vec![event], tokens, outbox, ..Effects::default() };
        self.store.insert_user_with(&user, &effects).await.map_err(taken_from_conflict)?;
        if !effects.outbox.is_empty() {
            self.notifier.wake();
        }
        let view = self.view(&user)?;
        // Without verification, or with MFA required (the user enrols a factor at their
        // first sign-in), the sign-up itself gives no tokens.
        if self.settings.require_email_verification
            || self.mfa.settings.policy == super::mfa::MfaPolicy::Required
        {
            return Ok((view, None));
        }
        let tokens = self.start_session(user, None, context).await?;
        Ok((tokens.user.clone(), Some(tokens)))
    }
}
