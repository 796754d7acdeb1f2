//! Invitations to an organization by email. The single-use token travels only in the email
//! (through the outbox); the row keeps its keyed digest and the address sealed, found by its
//! blind index. Accepting needs a signed-in user whose address is the invited one: the token
//! proves the mailbox, so an unverified address becomes verified by it. Expired invitations are
//! swept.

use std::sync::Arc;

use gatehouse_crypto::Digester;

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, OneTimeTokenProblem};
use crate::notify::{EmailPayload, Notifier};
use crate::principal::{Principal, RequestContext};
use crate::unit_of_work::UnitOfWork;
use crate::users::directory::UserDirectory;
use crate::users::email::Email;

use super::OrganizationService;
use super::record::MembershipRecord;
use super::store::{AcceptOutcome, InvitationRecord, InvitationStore};

/// Purpose of the keyed digest of invitation tokens.
pub const INVITATION_DIGEST_PURPOSE: &str = "invitation";
/// How long an invitation waits.
pub const INVITATION_TTL_SECONDS: i64 = 7 * 24 * 3600;
const MAX_TOKEN_LENGTH: usize = 128;

/// An invitation as the organization's managers see it (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: String,
    pub status: &'static str,
    pub created_at: i64,
    pub expires_at: i64,
}

pub struct InvitationService {
    pub(crate) organizations: Arc<OrganizationService>,
    pub(crate) store: Arc<dyn InvitationStore>,
    pub(crate) directory: Arc<UserDirectory>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) digester: Digester,
    pub(crate) clock: Arc<dyn Clock>,
}

impl InvitationService {
    pub fn new(
        organizations: Arc<OrganizationService>,
        store: Arc<dyn InvitationStore>,
        directory: Arc<UserDirectory>,
        notifier: Arc<Notifier>,
        digester: Digester,
        clock: Arc<dyn Clock>,
    ) -> InvitationService {
        InvitationService { organizations, store, directory, notifier, digester, clock }
    }

    fn view(&self, record: &InvitationRecord, now: i64) -> Result<InvitationView, DomainError> {
        let email = self.directory.open_address(&record.id, &record.email_ciphertext)?;
        let status = if record.accepted_at.is_some() {
            "accepted"
        } else if record.declined_at.is_some() {
            "declined"
        } else if record.revoked_at.is_some() {
            "revoked"
        } else if record.expires_at <= now {
            "expired"
        } else {
            "pending"
        };
        Ok(InvitationView {
            id: record.id.clone(),
            organization_id: record.organization_id.clone(),
            email,
            role: record.role.clone(),
            status,
            created_at: record.created_at,
            expires_at: record.expires_at,
        })
    }

    /// Invites an address with a role (`invitations:manage`, and the caller may grant the
    /// role); a pending invitation of the same address is replaced. The link goes by email.
    pub async fn invite(
        &self,
        principal: &Principal,
        organization_id: &str,
        email: &str,
        role: &str,
        context: &RequestContext,
    ) -> Result<InvitationView, DomainError> {
        let access =
            self.organizations.access(principal, organization_id, "invitations:manage").await?;
        let email =
            Email::parse(email, "email").map_err(|issue| DomainError::Validation(vec![issue]))?;
        self.organizations.may_grant(&access, role).await?;
        let now = self.clock.now();
        let id = gatehouse_crypto::new_id("inv");
        let token = gatehouse_crypto::random_token();
        let record = InvitationRecord {
            email_ciphertext: self.directory.seal_email(&id, &email)?,
            email_digest: self.directory.email_digest(&email),
            token_digest: self.digester.digest(token.as_bytes()).to_vec(),
            id,
            organization_id: organization_id.to_owned(),
            role: role.to_owned(),
            invited_by: Some(principal.user.id.clone()),
            created_at: now,
            expires_at: now + INVITATION_TTL_SECONDS,
            accepted_at: None,
            declined_at: None,
            revoked_at: None,
        };
        let mut work = UnitOfWork::events(vec![
            AuditEvent::new("invitation.created", &principal.actor(), context, now)
                .target("organization", organization_id)
                .metadata(serde_json::json!({ "invitation_id": record.id, "role": role })),
        ]);
        if self.notifier.email_enabled() {
            let inviter = principal
                .user
                .first_name
                .clone()
                .or_else(|| principal.user.username.clone())
                .unwrap_or_default();
            let locale = match context.locale.as_deref() {
                Some("fr") => "fr",
                _ => "en",
            };
            let values = [
                ("organization", access.organization.name.clone()),
                ("role", role.to_owned()),
                ("inviter", inviter),
                ("minutes", (INVITATION_TTL_SECONDS / 60).to_string()),
                ("link", self.notifier.link("/invitations/accept", &[("token", &token)])),
                ("name", String::new()),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
            let payload = EmailPayload {
                to: email.as_str().to_owned(),
                locale: locale.to_owned(),
                template: "organization_invitation".into(),
                values,
            };
            work.outbox.push(self.notifier.email(&payload, now)?);
        }
        self.store.create_invitation(&record, &work).await?;
        self.notifier.wake();
        self.view(&record, now)
    }

    /// The organization's invitations, newest first (`invitations:manage`).
    pub async fn list(
        &self,
        principal: &Principal,
        organization_id: &str,
    ) -> Result<Vec<InvitationView>, DomainError> {
        self.organizations.access(principal, organization_id, "invitations:manage").await?;
        let now = self.clock.now();
        self.store
            .invitations(organization_id)
            .await?
            .iter()
            .map(|record| self.view(record, now))
            .collect()
    }

    /// Revokes a pending invitation (`invitations:manage`).
    pub async fn revoke(
        &self,
        principal: &Principal,
        organization_id: &str,
        invitation_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        self.organizations.access(principal, organization_id, "invitations:manage").await?;
        let now = self.clock.now();
        let work = UnitOfWork::events(vec![
            AuditEvent::new("invitation.revoked", &principal.actor(), context, now)
                .target("organization", organization_id)
                .metadata(serde_json::json!({ "invitation_id": invitation_id })),
        ]);
        if !self.store.revoke_invitation(organization_id, invitation_id, now, &work).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    /// The pending invitation a token names, for the signed-in user it was sent to.
    async fn pending_for(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<InvitationRecord, DomainError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LENGTH {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Invalid));
        }
        let digest = self.digester.digest(token.as_bytes());
        let Some(record) = self.store.invitation_by_token(&digest).await? else {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Invalid));
        };
        self.still_pending_for(principal, record)
    }

    /// `record` if it is still pending and was sent to the principal's address.
    fn still_pending_for(
        &self,
        principal: &Principal,
        record: InvitationRecord,
    ) -> Result<InvitationRecord, DomainError> {
        if record.accepted_at.is_some()
            || record.declined_at.is_some()
            || record.revoked_at.is_some()
        {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Used));
        }
        if record.expires_at <= self.clock.now() {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Expired));
        }
        let matches =
            principal.user.email_digest.as_deref().is_some_and(|digest| {
                gatehouse_crypto::constant_time_eq(digest, &record.email_digest)
            });
        if !matches {
            return Err(DomainError::Forbidden(
                "This invitation was sent to another address; sign in with that one.".into(),
            ));
        }
        Ok(record)
    }

    /// A pending invitation by its id, for a signed-in user whose *verified* address it was
    /// sent to (the account page answers it without the emailed token: the verified address
    /// proves the mailbox as the token would). Another user's, or an unknown id: `not_found`.
    async fn pending_by_id(
        &self,
        principal: &Principal,
        invitation_id: &str,
    ) -> Result<InvitationRecord, DomainError> {
        let record = self.store.invitation(invitation_id).await?.ok_or(DomainError::NotFound)?;
        let record = match self.still_pending_for(principal, record) {
            Err(DomainError::Forbidden(_)) => return Err(DomainError::NotFound),
            other => other?,
        };
        if principal.user.email_verified_at.is_none() {
            return Err(DomainError::Forbidden(
                "Verify your email address first, or follow the link of the invitation's email."
                    .into(),
            ));
        }
        Ok(record)
    }

    /// The invitations waiting for the signed-in user's address, each with its
    /// organization's name, newest first.
    pub async fn pending_for_me(
        &self,
        principal: &Principal,
    ) -> Result<Vec<(InvitationView, String)>, DomainError> {
        let Some(digest) = principal.user.email_digest.as_deref() else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let mut pending = Vec::new();
        for record in self.store.pending_invitations_for_address(digest, now).await? {
            let Some(organization) =
                self.organizations.store.organization(&record.organization_id).await?
            else {
                continue;
            };
            pending.push((self.view(&record, now)?, organization.name));
        }
        Ok(pending)
    }

    /// Accepts (`accept`) or declines an invitation from the account page, by its id; the
    /// user's address must be the invited one and verified.
    pub async fn answer_by_id(
        &self,
        principal: &Principal,
        invitation_id: &str,
        accept: bool,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let record = self.pending_by_id(principal, invitation_id).await?;
        if accept {
            self.join(principal, record, context).await.map(drop)
        } else {
            self.turn_down(principal, record, context).await
        }
    }

    /// What a pending invitation offers the signed-in user it was sent to: the organization's
    /// name and the role (the hosted page shows them before Accept and Decline).
    pub async fn describe(
        &self,
        principal: &Principal,
        token: &str,
    ) -> Result<(String, String), DomainError> {
        let record = self.pending_for(principal, token).await?;
        let organization = self
            .organizations
            .store
            .organization(&record.organization_id)
            .await?
            .ok_or(DomainError::OneTimeToken(OneTimeTokenProblem::Invalid))?;
        Ok((organization.name, record.role))
    }

    /// Accepts an invitation: the signed-in user joins with its role (their address, proven
    /// by the token, becomes verified if it was not).
    pub async fn accept(
        &self,
        principal: &Principal,
        token: &str,
        context: &RequestContext,
    ) -> Result<MembershipRecord, DomainError> {
        let record = self.pending_for(principal, token).await?;
        self.join(principal, record, context).await
    }

    async fn join(
        &self,
        principal: &Principal,
        record: InvitationRecord,
        context: &RequestContext,
    ) -> Result<MembershipRecord, DomainError> {
        let now = self.clock.now();
        let membership = MembershipRecord {
            organization_id: record.organization_id.clone(),
            user_id: principal.user.id.clone(),
            role: record.role.clone(),
            created_at: now,
            updated_at: now,
        };
        let work = UnitOfWork::events(vec![
            AuditEvent::new("invitation.accepted", &principal.actor(), context, now)
                .target("organization", &record.organization_id)
                .metadata(serde_json::json!({ "invitation_id": record.id, "role": record.role })),
            AuditEvent::new("membership.created", &principal.actor(), context, now)
                .target("organization", &record.organization_id)
                .metadata(serde_json::json!({
                    "user_id": principal.user.id, "role": record.role, "via": "invitation"
                })),
        ]);
        match self.store.accept_invitation(&record.id, &membership, now, &work).await? {
            AcceptOutcome::Done => Ok(membership),
            AcceptOutcome::NotPending => Err(DomainError::OneTimeToken(OneTimeTokenProblem::Used)),
            AcceptOutcome::AlreadyMember => {
                Err(DomainError::Conflict("You are a member of this organization already.".into()))
            }
        }
    }

    /// Declines an invitation (the signed-in user it was sent to).
    pub async fn decline(
        &self,
        principal: &Principal,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let record = self.pending_for(principal, token).await?;
        self.turn_down(principal, record, context).await
    }

    async fn turn_down(
        &self,
        principal: &Principal,
        record: InvitationRecord,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let now = self.clock.now();
        let work = UnitOfWork::events(vec![
            AuditEvent::new("invitation.declined", &principal.actor(), context, now)
                .target("organization", &record.organization_id)
                .metadata(serde_json::json!({ "invitation_id": record.id })),
        ]);
        if !self.store.decline_invitation(&record.id, now, &work).await? {
            return Err(DomainError::OneTimeToken(OneTimeTokenProblem::Used));
        }
        Ok(())
    }
}
