//! Passkeys (WebAuthn): registering them on a signed-in account, signing in with them (with a
//! username or without: discoverable credentials and conditional UI), stepping up with them,
//! and listing, renaming and removing them. The ceremonies are `webauthn-rs`'s, wrapped by
//! `gatehouse_crypto::passkey`; this module keeps their state and applies the account rules.
//!
//! Security rules, stated where they are enforced:
//! - A ceremony id is random; only its keyed digest is stored, with the ceremony's state, for
//!   five minutes; finishing takes it (single use: a second finish, or one after expiry, is
//!   refused). Registration and step-up ceremonies are bound to the user and session that
//!   began them.
//! - User verification is preferred: a passkey that verified its user (PIN, biometric) is a
//!   whole multi-factor sign-in (`amr` `hwk` device-bound or `swk` synced, plus `mfa`; `acr`
//!   `aal2`; no second step); one that did not is a first factor only (`hwk`/`swk`), followed by
//!   the second step when the account has a factor. A credential registered with user
//!   verification is refused without it.
//! - A sign-in begun with an address answers the same for every address (no credential is
//!   listed; the ceremony is bound to the account server-side), after the same reads.
//! - A signature counter that does not move forward (for an authenticator that counts) refuses
//!   the sign-in, flags the credential (it signs nobody in until removed) and tells the owner.
//! - Adding or removing a passkey needs a recent authentication; removing the last way to sign
//!   in (the last passkey of an account without a password) is refused.
//! - Passkeys do not count towards the password lockout (they cannot be guessed), so a lock an
//!   attacker provokes by guessing passwords does not keep the owner's passkey out.

mod ceremony;
pub mod record;
pub mod store;

use std::sync::Arc;

use gatehouse_crypto::passkey::{PasskeyError, RegisteredPasskey, credential_id_text};
use gatehouse_crypto::{Digester, RelyingParty};
use serde_json::Value;

use crate::audit::{AuditEvent, AuditStore};
use crate::clock::Clock;
use crate::error::{DomainError, PasskeyProblem};
use crate::notify::Notices;
use crate::principal::{Actor, Principal, RequestContext};
use crate::sessions::record::Amr;
use crate::store::{Conflict, StoreError};
use crate::unit_of_work::UnitOfWork;
use crate::users::directory::UserDirectory;
use crate::users::record::UserRecord;
use crate::users::store::UserStore;

pub use ceremony::{PasskeyCeremony, user_handle};
pub use record::{
    CeremonyKind, PASSKEY_DIGEST_PURPOSE, PasskeyCeremonyRecord, PasskeyRecord, PendingSignUp,
};
pub use store::{PasskeyCeremonyStore, PasskeyStore};

/// How long a ceremony waits for its second request.
pub const CEREMONY_TTL_SECONDS: i64 = 300;
/// Longest passkey name.
pub const MAX_NAME_CHARS: usize = 64;

/// Whether passkeys work here, and why not.
#[derive(Debug, Clone)]
pub enum PasskeyAvailability {
    Available(Box<RelyingParty>),
    /// Off by configuration, or impossible (an IP-address issuer and no RP id): the message
    /// says which and what to change.
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct PasskeySettings {
    pub availability: PasskeyAvailability,
    /// The step-up window: adding or removing a passkey needs an authentication this recent.
    pub reauthentication_max_age_seconds: i64,
    /// Email verification before the first sign-in.
    pub require_email_verification: bool,
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub credential_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Synced across devices (backup-eligible), or bound to one device.
    pub synced: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub aaguid: Option<String>,
    pub flagged_at: Option<i64>,
}

impl PasskeyView {
    pub fn of(record: &PasskeyRecord) -> PasskeyView {
        PasskeyView {
            id: record.id.clone(),
            name: record.name.clone(),
            credential_id: record.credential_id.clone(),
            created_at: record.created_at,
            last_used_at: record.last_used_at,
            synced: record.backup_eligible,
            backup_eligible: record.backup_eligible,
            backup_state: record.backup_state,
            transports: record.transports.clone(),
            aaguid: record.aaguid.clone(),
            flagged_at: record.flagged_at,
        }
    }
}

/// A verified passkey assertion: whose, which credential, and the `amr` it is worth.
#[derive(Debug, Clone)]
pub struct VerifiedPasskey {
    pub user: UserRecord,
    pub passkey: PasskeyRecord,
    pub amr: Vec<Amr>,
}

/// What a passkey assertion sent for a ceremony looks like on the way in.
#[derive(Clone)]
pub struct PasskeyAssertion {
    pub ceremony_id: String,
    /// `PublicKeyCredential.toJSON()`.
    pub credential: Value,
}

impl std::fmt::Debug for PasskeyAssertion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PasskeyAssertion(..)")
    }
}

pub struct PasskeyService {
    pub(crate) store: Arc<dyn PasskeyStore>,
    pub(crate) ceremonies: Arc<dyn PasskeyCeremonyStore>,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) notices: Arc<Notices>,
    pub(crate) digester: Digester,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: PasskeySettings,
}

fn problem(problem: PasskeyProblem) -> DomainError {
    DomainError::Passkey(problem)
}

/// The `amr` a verified passkey is worth: the key kind (synced or device-bound), and `mfa`
/// when the authenticator verified its user (possession + a PIN or biometric).
fn amr_of(passkey: &PasskeyRecord, user_verified: bool) -> Vec<Amr> {
    let key = if passkey.backup_eligible { Amr::Swk } else { Amr::Hwk };
    if user_verified { vec![key, Amr::Mfa] } else { vec![key] }
}

impl PasskeyService {
    /// The relying party, or `passkeys_unavailable` with the reason.
    pub fn relying_party(&self) -> Result<&RelyingParty, DomainError> {
        match &self.settings.availability {
            PasskeyAvailability::Available(rp) => Ok(rp),
            PasskeyAvailability::Unavailable(reason) => {
                Err(problem(PasskeyProblem::Unavailable(reason.clone())))
            }
        }
    }

    /// Whether the pages should offer passkeys.
    pub fn available(&self) -> bool {
        matches!(self.settings.availability, PasskeyAvailability::Available(_))
    }

    fn require_recent_authentication(&self, principal: &Principal) -> Result<(), DomainError> {
        let session = &principal.session;
        let at = session.auth_time.unwrap_or(session.created_at);
        if at + self.settings.reauthentication_max_age_seconds < self.clock.now() {
            return Err(DomainError::ReauthenticationRequired);
        }
        Ok(())
    }

    /// The user's passkeys, newest first.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<PasskeyView>, DomainError> {
        Ok(self.store.passkeys_of(&principal.user.id).await?.iter().map(PasskeyView::of).collect())
    }

    /// A user's passkeys, newest first, for an admin.
    pub async fn admin_list(
        &self,
        _admin: &crate::principal::AdminPrincipal,
        user_id: &str,
    ) -> Result<Vec<PasskeyView>, DomainError> {
        Ok(self.store.passkeys_of(user_id).await?.iter().map(PasskeyView::of).collect())
    }

    /// Starts adding a passkey to the signed-in account (recent authentication required).
    pub async fn begin_registration(
        &self,
        principal: &Principal,
    ) -> Result<PasskeyCeremony, DomainError> {
        let rp = self.relying_party()?;
        self.require_recent_authentication(principal)?;
        let user = &principal.user;
        let existing = self.store.passkeys_of(&user.id).await?;
        let exclude = existing
            .iter()
            .filter_map(|passkey| ceremony::credential_id_bytes(&passkey.credential_id))
            .collect();
        let email = self.directory.open_email(user)?;
        let account_name =
            email.clone().or_else(|| user.username.clone()).unwrap_or_else(|| user.id.clone());
        let display = display_name(user.first_name.as_deref(), user.last_name.as_deref())
            .unwrap_or_else(|| account_name.clone());
        let started = rp
            .start_registration(user_handle(&user.id)?, &account_name, &display, exclude)
            .map_err(passkey_error)?;
        let now = self.clock.now();
        let record = PasskeyCeremonyRecord {
            id_digest: Vec::new(),
            kind: CeremonyKind::Register,
            user_id: Some(user.id.clone()),
            session_id: Some(principal.session.id.clone()),
            sign_up: None,
            state: ceremony::state_text(started.state)?,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECONDS,
        };
        self.open_ceremony(record, started.options).await
    }

    /// Finishes adding a passkey: the credential verified against the ceremony this session
    /// began, stored with its name (a default one when none is given), audited, the owner told.
    pub async fn finish_registration(
        &self,
        principal: &Principal,
        ceremony_id: &str,
        credential: &Value,
        name: Option<&str>,
        context: &RequestContext,
    ) -> Result<PasskeyView, DomainError> {
        let rp = self.relying_party()?;
        let name = parse_name(name)?;
        let ceremony = self.take_ceremony(ceremony_id, CeremonyKind::Register).await?;
        if ceremony.user_id.as_deref() != Some(principal.user.id.as_str())
            || ceremony.session_id.as_deref() != Some(principal.session.id.as_str())
        {
            return Err(problem(PasskeyProblem::CeremonyInvalid));
        }
        let registered =
            rp.finish_registration(credential, ceremony.state.as_bytes()).map_err(passkey_error)?;
        let now = self.clock.now();
        let passkey = new_passkey(&principal.user.id, registered, name, now);
        let actor = Actor::User(principal.user.id.clone());
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("passkey.added", &actor, context, now)
                .target("passkey", &passkey.id)
                .metadata(
                    serde_json::json!({ "name": passkey.name, "synced": passkey.backup_eligible }),
                ),
        ]);
        work.outbox.extend(self.notices.passkey_changed(
            &principal.user,
            "added",
            &passkey.name,
            context,
        )?);
        self.store.insert_passkey(&passkey, &work).await.map_err(passkey_conflict)?;
        self.notices.wake();
        Ok(PasskeyView::of(&passkey))
    }

    /// Renames one of the user's passkeys.
    pub async fn rename(
        &self,
        principal: &Principal,
        passkey_id: &str,
        name: &str,
        context: &RequestContext,
    ) -> Result<PasskeyView, DomainError> {
        let Some(name) = parse_name(Some(name))? else {
            return Err(DomainError::Invalid("a passkey needs a name".into()));
        };
        let user = &principal.user;
        let Some(mut passkey) = self.owned(user, passkey_id).await? else {
            return Err(DomainError::NotFound);
        };
        let now = self.clock.now();
        let actor = Actor::User(user.id.clone());
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("passkey.renamed", &actor, context, now)
                .target("passkey", passkey_id)
                .metadata(serde_json::json!({ "from": passkey.name, "to": name })),
        ]);
        work.outbox.extend(self.notices.passkey_changed(user, "renamed", &name, context)?);
        if !self.store.rename_passkey(&user.id, passkey_id, &name, &work).await? {
            return Err(DomainError::NotFound);
        }
        self.notices.wake();
        passkey.name = name;
        Ok(PasskeyView::of(&passkey))
    }

    /// Removes one of the user's passkeys (recent authentication required); the last way to
    /// sign in of an account without a password cannot go.
    pub async fn remove(
        &self,
        principal: &Principal,
        passkey_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        let passkeys = self.store.passkeys_of(&user.id).await?;
        let Some(passkey) = passkeys.iter().find(|passkey| passkey.id == passkey_id) else {
            return Err(DomainError::NotFound);
        };
        self.require_recent_authentication(principal)?;
        // Whether another way to sign in stays (a password, another passkey, a linked
        // identity) is decided by the store, in the removal's transaction.
        let now = self.clock.now();
        let actor = Actor::User(user.id.clone());
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("passkey.removed", &actor, context, now)
                .target("passkey", passkey_id)
                .metadata(serde_json::json!({ "name": passkey.name })),
        ]);
        work.outbox.extend(self.notices.passkey_changed(
            user,
            "removed",
            &passkey.name,
            context,
        )?);
        if !self.store.delete_passkey(&user.id, passkey_id, &work).await? {
            // Refused in the transaction: it is still there (another removal raced this one
            // and left it the last way to sign in), or gone.
            let still_there = self.owned(user, passkey_id).await?.is_some();
            return Err(if still_there {
                problem(PasskeyProblem::LastSignInMethod)
            } else {
                DomainError::NotFound
            });
        }
        self.notices.wake();
        Ok(())
    }

    async fn owned(
        &self,
        user: &UserRecord,
        passkey_id: &str,
    ) -> Result<Option<PasskeyRecord>, DomainError> {
        Ok(self.store.passkeys_of(&user.id).await?.into_iter().find(|p| p.id == passkey_id))
    }

    /// Starts a sign-in: any discoverable passkey of this site may answer; with an address, only
    /// a passkey of that account is accepted (and none when it has no account).
    pub async fn begin_sign_in(&self, email: Option<&str>) -> Result<PasskeyCeremony, DomainError> {
        let rp = self.relying_party()?;
        // With an address the ceremony is bound to its account server-side, and the options
        // list no credential: the answer is the same for every address, so it tells nothing
        // about accounts (real credential ids would, by their number and lengths).
        let user_id = match email {
            None => None,
            Some(text) => {
                let user = self.directory.by_email(text).await?;
                // Bound to the owner, or to nobody that exists.
                Some(user.map(|user| user.id).unwrap_or_default())
            }
        };
        let started = rp.start_authentication(&[]).map_err(passkey_error)?;
        let now = self.clock.now();
        let record = PasskeyCeremonyRecord {
            id_digest: Vec::new(),
            kind: CeremonyKind::SignIn,
            user_id,
            session_id: None,
            sign_up: None,
            state: ceremony::state_text(started.state)?,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECONDS,
        };
        self.open_ceremony(record, started.options).await
    }

    /// Verifies a sign-in assertion (see `sign_in::SignInService::sign_in_with_passkey`,
    /// which opens the session or the second step): the user, the passkey, its `amr`.
    pub(crate) async fn verify_sign_in(
        &self,
        assertion: PasskeyAssertion,
        context: &RequestContext,
    ) -> Result<VerifiedPasskey, DomainError> {
        self.verify(assertion, CeremonyKind::SignIn, None, context).await
    }

    /// Starts a step-up with a passkey for the signed-in user (only their passkeys listed).
    pub async fn begin_step_up(
        &self,
        principal: &Principal,
    ) -> Result<PasskeyCeremony, DomainError> {
        let rp = self.relying_party()?;
        let passkeys = self.store.passkeys_of(&principal.user.id).await?;
        let allow: Vec<Vec<u8>> = passkeys
            .iter()
            .filter(|passkey| passkey.flagged_at.is_none())
            .filter_map(|passkey| ceremony::credential_id_bytes(&passkey.credential_id))
            .collect();
        if allow.is_empty() {
            return Err(problem(PasskeyProblem::NoPasskey));
        }
        let started = rp.start_authentication(&allow).map_err(passkey_error)?;
        let now = self.clock.now();
        let record = PasskeyCeremonyRecord {
            id_digest: Vec::new(),
            kind: CeremonyKind::StepUp,
            user_id: Some(principal.user.id.clone()),
            session_id: Some(principal.session.id.clone()),
            sign_up: None,
            state: ceremony::state_text(started.state)?,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECONDS,
        };
        self.open_ceremony(record, started.options).await
    }

    /// Verifies a step-up assertion for the signed-in user: the `amr` it adds.
    pub(crate) async fn verify_step_up(
        &self,
        principal: &Principal,
        assertion: PasskeyAssertion,
        context: &RequestContext,
    ) -> Result<Vec<Amr>, DomainError> {
        let verified =
            self.verify(assertion, CeremonyKind::StepUp, Some(principal), context).await?;
        Ok(verified.amr)
    }

    /// The shared part of every assertion: the ceremony taken, the credential found and
    /// verified (signature, challenge, origin, RP id, user verification, counter), its use
    /// recorded. Failures are audited; a counter that went backwards flags the credential.
    async fn verify(
        &self,
        assertion: PasskeyAssertion,
        kind: CeremonyKind,
        principal: Option<&Principal>,
        context: &RequestContext,
    ) -> Result<VerifiedPasskey, DomainError> {
        let rp = self.relying_party()?;
        let now = self.clock.now();
        let purpose = match kind {
            CeremonyKind::StepUp => "step_up",
            _ => "sign_in",
        };
        let refuse = |reason: &str, user: Option<&str>| {
            let actor = user.map_or(Actor::Anonymous, |id| Actor::User(id.to_owned()));
            let mut event = AuditEvent::new("passkey.rejected", &actor, context, now)
                .metadata(serde_json::json!({ "reason": reason, "purpose": purpose }));
            if let Some(id) = user {
                event = event.target("user", id);
            }
            event
        };
        // Every refusal is audited; nothing else is written.
        let ceremony = match self.take_ceremony(&assertion.ceremony_id, kind).await {
            Ok(ceremony) => ceremony,
            Err(error) => {
                self.audit.append_audit_events(&[refuse(error.code(), None)]).await?;
                return Err(error);
            }
        };
        if let Some(principal) = principal
            && (ceremony.user_id.as_deref() != Some(principal.user.id.as_str())
                || ceremony.session_id.as_deref() != Some(principal.session.id.as_str()))
        {
            let user = Some(principal.user.id.as_str());
            self.audit.append_audit_events(&[refuse("ceremony_not_this_session", user)]).await?;
            return Err(problem(PasskeyProblem::CeremonyInvalid));
        }
        let claim = match rp.claim(&assertion.credential) {
            Ok(claim) => claim,
            Err(error) => {
                self.audit.append_audit_events(&[refuse("malformed", None)]).await?;
                return Err(passkey_error(error));
            }
        };
        let credential_id = credential_id_text(&claim.credential_id);
        let Some(passkey) = self.store.passkey_by_credential_id(&credential_id).await? else {
            self.audit.append_audit_events(&[refuse("unknown_credential", None)]).await?;
            return Err(problem(PasskeyProblem::UnknownCredential));
        };
        let owner = Some(passkey.user_id.as_str());
        let handle_matches = match claim.user_handle {
            Some(handle) => user_handle(&passkey.user_id)? == handle,
            None => true,
        };
        let bound_elsewhere =
            ceremony.user_id.as_deref().is_some_and(|bound| bound != passkey.user_id);
        if !handle_matches || bound_elsewhere {
            self.audit.append_audit_events(&[refuse("credential_not_allowed", owner)]).await?;
            return Err(problem(PasskeyProblem::Rejected("credential")));
        }
        if passkey.flagged_at.is_some() {
            self.audit.append_audit_events(&[refuse("flagged", owner)]).await?;
            return Err(problem(PasskeyProblem::Flagged));
        }
        let stored_count = u32::try_from(passkey.sign_count).unwrap_or(u32::MAX);
        let verified = rp.finish_authentication(
            &assertion.credential,
            ceremony.state.as_bytes(),
            &passkey.credential,
            stored_count,
        );
        let assertion = match verified {
            Ok(assertion) => assertion,
            // Another sign-in with this passkey, begun before this one, finished first with a
            // higher counter: two tabs racing, not a clone.
            Err(PasskeyError::CounterRegressed)
                if passkey.last_used_at.is_some_and(|used| used > ceremony.created_at) =>
            {
                self.audit.append_audit_events(&[refuse("replayed", owner)]).await?;
                return Err(problem(PasskeyProblem::Rejected("replayed")));
            }
            Err(PasskeyError::CounterRegressed) => {
                self.flag(&passkey, context, now).await?;
                return Err(problem(PasskeyProblem::Flagged));
            }
            Err(error) => {
                let reason = match &error {
                    PasskeyError::Rejected(reason) => *reason,
                    _ => "malformed",
                };
                self.audit.append_audit_events(&[refuse(reason, owner)]).await?;
                return Err(passkey_error(error));
            }
        };
        let Some(user) = self.users.user_by_id(&passkey.user_id).await? else {
            return Err(problem(PasskeyProblem::UnknownCredential));
        };
        // The account's own refusals come before anything is recorded of this use.
        if kind == CeremonyKind::SignIn {
            let failed = |reason: &str| {
                AuditEvent::new("user.sign_in_failed", &Actor::User(user.id.clone()), context, now)
                    .target("user", &user.id)
                    .metadata(serde_json::json!({ "reason": reason, "method": "passkey" }))
            };
            if user.suspended_at.is_some() {
                self.audit.append_audit_events(&[failed("suspended")]).await?;
                return Err(DomainError::AccountSuspended);
            }
            if self.settings.require_email_verification && user.email_verified_at.is_none() {
                self.audit.append_audit_events(&[failed("email_not_verified")]).await?;
                return Err(DomainError::EmailNotVerified);
            }
        }
        let mut used = passkey.clone();
        used.credential = assertion.stored;
        used.sign_count = i64::from(assertion.facts.sign_count);
        used.backup_state = assertion.facts.backup_state;
        used.backup_eligible = assertion.facts.backup_eligible;
        used.last_used_at = Some(now);
        if !self.store.record_passkey_use(&used, passkey.sign_count).await? {
            // Another assertion of this credential with the same counter won the race.
            self.audit.append_audit_events(&[refuse("replayed", owner)]).await?;
            return Err(problem(PasskeyProblem::Rejected("replayed")));
        }
        let amr = amr_of(&used, assertion.facts.user_verified);
        Ok(VerifiedPasskey { user, passkey: used, amr })
    }

    /// A possible clone: the credential is flagged, the owner told, the event audited.
    async fn flag(
        &self,
        passkey: &PasskeyRecord,
        context: &RequestContext,
        now: i64,
    ) -> Result<(), DomainError> {
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("passkey.flagged", &Actor::System, context, now)
                .target("passkey", &passkey.id)
                .metadata(serde_json::json!({
                    "user_id": passkey.user_id, "reason": "sign_count_regressed"
                })),
        ]);
        if let Some(owner) = self.users.user_by_id(&passkey.user_id).await? {
            work.outbox.extend(self.notices.passkey_changed(
                &owner,
                "flagged",
                &passkey.name,
                context,
            )?);
        }
        self.store.flag_passkey(&passkey.id, now, &work).await?;
        self.notices.wake();
        Ok(())
    }

    /// Starts a passkey sign-up for a new account (the caller checked the address and that
    /// sign-up is open): a registration for the user id the account will have.
    pub(crate) async fn begin_sign_up(
        &self,
        pending: PendingSignUp,
        email: &str,
    ) -> Result<PasskeyCeremony, DomainError> {
        let rp = self.relying_party()?;
        let display = display_name(pending.first_name.as_deref(), pending.last_name.as_deref())
            .unwrap_or_else(|| email.to_owned());
        let started = rp
            .start_registration(user_handle(&pending.user_id)?, email, &display, vec![])
            .map_err(passkey_error)?;
        let now = self.clock.now();
        let record = PasskeyCeremonyRecord {
            id_digest: Vec::new(),
            kind: CeremonyKind::SignUp,
            user_id: Some(pending.user_id.clone()),
            session_id: None,
            sign_up: Some(pending),
            state: ceremony::state_text(started.state)?,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECONDS,
        };
        self.open_ceremony(record, started.options).await
    }

    /// Finishes a passkey sign-up's ceremony: the account to create and its first passkey
    /// (not stored yet: the caller writes both in one transaction).
    pub(crate) async fn finish_sign_up(
        &self,
        ceremony_id: &str,
        credential: &Value,
        name: Option<&str>,
    ) -> Result<(PendingSignUp, PasskeyRecord, Vec<Amr>), DomainError> {
        let rp = self.relying_party()?;
        let name = parse_name(name)?;
        let ceremony = self.take_ceremony(ceremony_id, CeremonyKind::SignUp).await?;
        let Some(pending) = ceremony.sign_up else {
            return Err(problem(PasskeyProblem::CeremonyInvalid));
        };
        let registered =
            rp.finish_registration(credential, ceremony.state.as_bytes()).map_err(passkey_error)?;
        let user_verified = registered.facts.user_verified;
        let passkey = new_passkey(&pending.user_id, registered, name, self.clock.now());
        let amr = amr_of(&passkey, user_verified);
        Ok((pending, passkey, amr))
    }

    /// `passkey_already_registered` when this credential id is anyone's already.
    pub(crate) async fn refuse_registered_credential(
        &self,
        credential_id: &str,
    ) -> Result<(), DomainError> {
        match self.store.passkey_by_credential_id(credential_id).await? {
            Some(_) => Err(problem(PasskeyProblem::AlreadyRegistered)),
            None => Ok(()),
        }
    }
}

fn display_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let joined = [first, last].into_iter().flatten().collect::<Vec<_>>().join(" ");
    (!joined.trim().is_empty()).then_some(joined)
}

/// A name the user gave (trimmed, 1–64 characters, no control characters), or none.
fn parse_name(name: Option<&str>) -> Result<Option<String>, DomainError> {
    let Some(name) = name.map(str::trim) else { return Ok(None) };
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(DomainError::Validation(vec![crate::error::FieldIssue::new(
            "name",
            "invalid_name",
            format!(
                "A passkey name has 1 to {MAX_NAME_CHARS} characters, none of them control characters."
            ),
        )]));
    }
    Ok(Some(name.to_owned()))
}

fn new_passkey(
    user_id: &str,
    registered: RegisteredPasskey,
    name: Option<String>,
    now: i64,
) -> PasskeyRecord {
    let facts = registered.facts;
    let default_name = if facts.backup_eligible { "Synced passkey" } else { "Passkey" };
    PasskeyRecord {
        id: gatehouse_crypto::new_id("pk"),
        user_id: user_id.to_owned(),
        credential_id: credential_id_text(&facts.credential_id),
        credential: registered.stored,
        name: name.unwrap_or_else(|| default_name.to_owned()),
        sign_count: i64::from(facts.sign_count),
        transports: facts.transports,
        backup_eligible: facts.backup_eligible,
        backup_state: facts.backup_state,
        aaguid: registered
            .aaguid
            .filter(|aaguid| !aaguid.is_nil())
            .map(|aaguid| aaguid.to_string()),
        created_at: now,
        last_used_at: None,
        flagged_at: None,
    }
}

pub(crate) fn passkey_conflict(error: StoreError) -> DomainError {
    match error {
        StoreError::Conflict(Conflict::PasskeyCredential) => {
            problem(PasskeyProblem::AlreadyRegistered)
        }
        other => other.into(),
    }
}

/// A ceremony's failure as the API says it.
pub(crate) fn passkey_error(error: PasskeyError) -> DomainError {
    match error {
        PasskeyError::Configuration(reason) => problem(PasskeyProblem::Unavailable(reason)),
        PasskeyError::Malformed(reason) => problem(PasskeyProblem::Malformed(reason)),
        PasskeyError::Rejected(reason) => problem(PasskeyProblem::Rejected(reason)),
        PasskeyError::CounterRegressed => problem(PasskeyProblem::Flagged),
        PasskeyError::Internal(reason) => DomainError::Internal(reason),
    }
}
