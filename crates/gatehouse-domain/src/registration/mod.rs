//! Registration and profile: sign-up (validate everything at once, refuse taken identifiers,
//! hash on the bounded pool, store the user with its audit event and verification link, sign
//! in unless verification or MFA enrolment comes first), and the signed-in user's own profile.
//!
//! Security rule (no enumeration through sign-up): when email verification is required, a
//! sign-up answers [`SignUpOutcome::VerificationRequired`] whether or not the address already
//! has an account, after the same work (validation, one Argon2id hash, one write with a sealed
//! message): the new account gets its verification link, the existing owner a "you already
//! have an account" email pointing to sign-in and reset. Without verification required a new
//! account is signed in at once, so a taken address must answer `email_taken`: hiding it is
//! impossible there.
//!
//! Rule (sign-up can be switched off): with `signup_enabled` false, [`RegistrationService::sign_up`]
//! refuses every request with `Disabled(Feature::SignUp)` before it reads or writes anything,
//! so the API, the hosted page and anything later built on this service obey alike; accounts
//! then come from `AdminUserService` (the admin API, the CLI, bulk import).

pub mod deletion;
mod passkey;
mod profile;

use std::sync::Arc;

use gatehouse_crypto::HashingPool;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::email_links::record::TokenPurpose;
use crate::error::{DomainError, Feature, Taken};
use crate::mfa::MfaPolicy;
use crate::notify::Notices;
use crate::passwords::PasswordService;
use crate::principal::{Actor, RequestContext};
use crate::sessions::{NewSession, SessionService, SignInMethod, Tokens};
use crate::unit_of_work::{UnitOfWork, UnitOfWorkStore};
use crate::users::directory::UserDirectory;
use crate::users::names::NewIdentity;
use crate::users::record::UserRecord;
use crate::users::store::UserStore;
use crate::users::{UserView, Username};

pub use passkey::PasskeySignUp;
pub use profile::ProfileUpdate;

#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// What a sign-up answers.
#[derive(Debug, Clone)]
pub enum SignUpOutcome {
    /// The account exists; tokens unless MFA enrolment comes first.
    Created { user: Box<UserView>, tokens: Option<Box<Tokens>> },
    /// Email verification is required: the same answer for a new and a registered address.
    VerificationRequired,
}

pub struct RegistrationService {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) work: Arc<dyn UnitOfWorkStore>,
    pub(crate) hashing: HashingPool,
    pub(crate) passwords: Arc<PasswordService>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) notices: Arc<Notices>,
    pub(crate) sessions: Arc<SessionService>,
    pub(crate) passkeys: Arc<crate::passkeys::PasskeyService>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) require_email_verification: bool,
    pub(crate) signup_enabled: bool,
    pub(crate) mfa_policy: MfaPolicy,
}

impl RegistrationService {
    /// Whether self-service sign-up is open (pages hide their sign-up links when it is not).
    pub fn signup_enabled(&self) -> bool {
        self.signup_enabled
    }

    /// Creates an account. Returns tokens too unless MFA enrolment comes first; when email
    /// verification is required, answers only that (see the module's rule).
    pub async fn sign_up(
        &self,
        request: SignUp,
        context: &RequestContext,
    ) -> Result<SignUpOutcome, DomainError> {
        if !self.signup_enabled {
            return Err(DomainError::Disabled(Feature::SignUp));
        }
        let mut issues = Vec::new();
        let NewIdentity { email, username, first_name, last_name } = NewIdentity::parse(
            &request.email,
            request.username.as_deref(),
            request.first_name.as_deref(),
            request.last_name.as_deref(),
            &mut issues,
        );
        let mut inputs: Vec<&str> = Vec::new();
        if let Some(email) = &email {
            inputs.extend([email.as_str(), email.local_part()]);
        }
        inputs.extend(username.as_ref().map(Username::as_str));
        inputs.extend(first_name.as_deref());
        inputs.extend(last_name.as_deref());
        self.passwords
            .check_new_password(&request.password, "password", &inputs, &[], issues)
            .await?;
        let (Some(email), username) = (email, username) else {
            return Err(DomainError::Internal("email missing after validation".into()));
        };

        // The username first: a taken username answers the same whether or not the address is
        // registered, so it cannot serve to test addresses.
        if let Some(username) = &username
            && self.users.user_by_username(username.as_str()).await?.is_some()
        {
            return Err(DomainError::Taken(Taken::Username));
        }
        let email_digest = self.directory.email_digest(&email);
        if let Some(owner) = self.users.user_by_email_digest(&email_digest).await? {
            if self.require_email_verification {
                return self.tell_existing_owner(&owner, request.password, context).await;
            }
            return Err(DomainError::Taken(Taken::Email));
        }

        let password_hash = self.hashing.hash(request.password.into()).await?;
        let now = self.clock.now();
        let user = UserRecord {
            username: username.map(|name| name.as_str().to_owned()),
            first_name,
            last_name,
            password_hash: Some(password_hash),
            password_changed_at: Some(now),
            ..self.directory.new_account(&email, now)?
        };
        let event = AuditEvent::new("user.created", &Actor::User(user.id.clone()), context, now)
            .target("user", &user.id);
        let (tokens, outbox) = self.notices.link_email(
            &user,
            TokenPurpose::VerifyEmail,
            "/verify-email",
            &[],
            context,
            now,
        )?;
        let work = UnitOfWork { events: vec![event], tokens, outbox, ..UnitOfWork::default() };
        match self.users.insert_user(&user, &work).await.map_err(DomainError::from_taken) {
            // Someone registered the address in the meantime: the same answer as above.
            Err(DomainError::Taken(Taken::Email)) if self.require_email_verification => {
                return Ok(SignUpOutcome::VerificationRequired);
            }
            result => result?,
        }
        if !work.outbox.is_empty() {
            self.notices.wake();
        }
        if self.require_email_verification {
            return Ok(SignUpOutcome::VerificationRequired);
        }
        let view = self.directory.view(&user)?;
        // With MFA required (the user enrols a factor at their first sign-in), the sign-up
        // itself gives no tokens.
        if self.mfa_policy == MfaPolicy::Required {
            return Ok(SignUpOutcome::Created { user: Box::new(view), tokens: None });
        }
        let new = NewSession {
            user,
            rehashed_password: None,
            method: SignInMethod::Password,
            amr: vec![SignInMethod::Password.amr()],
            facts: None,
            work: UnitOfWork::default(),
        };
        let tokens = self.sessions.start(new, context).await?;
        Ok(SignUpOutcome::Created {
            user: Box::new(tokens.user.clone()),
            tokens: Some(Box::new(tokens)),
        })
    }

    /// A sign-up with verification required for an address that already has an account: the
    /// same Argon2id work as a new account (the hash is dropped), and one write — the audit
    /// event and an "account exists" email to the owner, with sign-in and reset pointers.
    async fn tell_existing_owner(
        &self,
        owner: &UserRecord,
        password: String,
        context: &RequestContext,
    ) -> Result<SignUpOutcome, DomainError> {
        let _same_work = self.hashing.hash(password.into()).await?;
        let now = self.clock.now();
        let event = AuditEvent::new("user.sign_up_existing", &Actor::Anonymous, context, now)
            .target("user", &owner.id);
        let outbox = self.notices.account_exists(owner, context, now)?;
        let work = UnitOfWork {
            events: vec![event],
            outbox: outbox.into_iter().collect(),
            ..UnitOfWork::default()
        };
        self.work.commit(&work).await?;
        if !work.outbox.is_empty() {
            self.notices.wake();
        }
        Ok(SignUpOutcome::VerificationRequired)
    }
}

#[cfg(test)]
mod tests;
