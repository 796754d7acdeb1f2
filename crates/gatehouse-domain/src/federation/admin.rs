//! Providers through the admin API (`/v1/admin/identity-providers`): the file's are listed
//! read-only; admin-added ones are created, changed and removed at run time, their client
//! secret write-only (sealed at rest, never answered), their URLs under the outbound SSRF rule
//! at registration (and again at each call: the upstream client checks them). Ids are unique
//! across both.

use super::provider::{IdentityProvider, ProviderSettings};
use super::store::StoredProvider;
use super::{FederationService, problem};
use crate::audit::AuditEvent;
use crate::error::{DomainError, FederationProblem, FieldIssue};
use crate::principal::{AdminPrincipal, RequestContext};

/// A provider as admins see it: never the client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAdminView {
    pub provider: IdentityProvider,
    /// A secret is kept (Apple: its sign-in key).
    pub has_client_secret: bool,
    /// From the configuration file: changed only there.
    pub read_only: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// A change to an admin-added provider; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProviderChange {
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub emails_url: Option<String>,
    pub client_id: Option<String>,
    /// A new secret (write-only); Apple: a new sign-in key (PEM).
    pub client_secret: Option<String>,
    /// Apple: the team and the sign-in key's id.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub keep_tokens: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub allow_sign_up: Option<bool>,
    pub trust_email_verified: Option<bool>,
    pub trust_amr: Option<bool>,
}

const MAX_SECRET_LENGTH: usize = 4096;

impl FederationService {
    fn admin_view(&self, stored: &StoredProvider) -> Result<ProviderAdminView, DomainError> {
        Ok(ProviderAdminView {
            provider: self.open_stored(stored)?,
            has_client_secret: stored.client_secret.is_some(),
            read_only: false,
            created_at: Some(stored.created_at),
            updated_at: Some(stored.updated_at),
        })
    }

    /// Every provider, the file's first.
    pub async fn admin_providers(
        &self,
        _admin: &AdminPrincipal,
    ) -> Result<Vec<ProviderAdminView>, DomainError> {
        let mut views: Vec<ProviderAdminView> = self
            .providers
            .iter()
            .map(|provider| ProviderAdminView {
                has_client_secret: provider.client_secret.is_some()
                    || provider.client_key.is_some(),
                provider: provider.clone(),
                read_only: true,
                created_at: None,
                updated_at: None,
            })
            .collect();
        for stored in self.stored.stored_providers().await? {
            views.push(self.admin_view(&stored)?);
        }
        Ok(views)
    }

    pub async fn admin_provider(
        &self,
        admin: &AdminPrincipal,
        id: &str,
    ) -> Result<ProviderAdminView, DomainError> {
        self.admin_providers(admin)
            .await?
            .into_iter()
            .find(|view| view.provider.id == id)
            .ok_or(DomainError::NotFound)
    }

    /// The SSRF rule on every URL the provider will be called at.
    async fn check_targets(&self, provider: &IdentityProvider) -> Result<(), DomainError> {
        let mut issues = Vec::new();
        for (field, value) in [
            ("issuer", &provider.issuer),
            ("authorization_url", &provider.authorization_url),
            ("token_url", &provider.token_url),
            ("userinfo_url", &provider.userinfo_url),
            ("emails_url", &provider.emails_url),
        ] {
            // The authorization URL is the browser's to visit, not ours to call.
            let Some(url) = value.as_deref().filter(|_| field != "authorization_url") else {
                continue;
            };
            if let Err(reason) = self.guard.check(url).await {
                issues.push(FieldIssue::new(
                    field,
                    "refused_target",
                    format!("The URL is refused: {reason}."),
                ));
            }
        }
        if issues.is_empty() { Ok(()) } else { Err(DomainError::Validation(issues)) }
    }

    fn sealed_secret(
        &self,
        id: &str,
        secret: Option<&str>,
    ) -> Result<Option<Vec<u8>>, DomainError> {
        match secret {
            Some(secret) if secret.is_empty() || secret.len() > MAX_SECRET_LENGTH => {
                Err(DomainError::Validation(vec![FieldIssue::new(
                    "client_secret",
                    "invalid",
                    "1 to 4096 characters",
                )]))
            }
            Some(secret) => Ok(Some(self.secret_cipher.seal(id.as_bytes(), secret.as_bytes())?)),
            None => Ok(None),
        }
    }

    fn provider_event(
        &self,
        action: &str,
        admin: &AdminPrincipal,
        provider: &IdentityProvider,
        context: &RequestContext,
    ) -> AuditEvent {
        AuditEvent::new(action, admin.actor(), context, self.clock.now())
            .target("identity_provider", &provider.id)
            .metadata(serde_json::json!({ "kind": provider.kind.as_str(), "name": provider.name }))
    }

    /// Adds a provider; usable at once by every instance.
    pub async fn create_provider(
        &self,
        admin: &AdminPrincipal,
        settings: ProviderSettings,
        context: &RequestContext,
    ) -> Result<ProviderAdminView, DomainError> {
        let provider =
            settings.build(false).map_err(|issue| DomainError::Validation(vec![issue]))?;
        let taken = self.providers.iter().any(|file| file.id == provider.id)
            || self.stored.stored_provider(&provider.id).await?.is_some();
        if taken {
            return Err(DomainError::Conflict("An identity provider has this id already.".into()));
        }
        self.check_targets(&provider).await?;
        let now = self.clock.now();
        let stored = StoredProvider {
            client_secret: self.sealed_secret(&provider.id, settings.client_secret.as_deref())?,
            settings: ProviderSettings { client_secret: None, ..settings },
            created_at: now,
            updated_at: now,
        };
        let event = self.provider_event("identity_provider.created", admin, &provider, context);
        self.stored.insert_provider(&stored, &[event]).await.map_err(|error| match error {
            crate::store::StoreError::Conflict(_) => {
                DomainError::Conflict("An identity provider has this id already.".into())
            }
            other => other.into(),
        })?;
        self.admin_view(&stored)
    }

    async fn stored_or_refused(&self, id: &str) -> Result<StoredProvider, DomainError> {
        if self.providers.iter().any(|provider| provider.id == id) {
            return Err(problem(FederationProblem::ProviderReadOnly));
        }
        self.stored.stored_provider(id).await?.ok_or(DomainError::NotFound)
    }

    /// Changes an admin-added provider (the file's are read-only here).
    pub async fn update_provider(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        change: ProviderChange,
        context: &RequestContext,
    ) -> Result<ProviderAdminView, DomainError> {
        let mut stored = self.stored_or_refused(id).await?;
        let kept_secret = self.open_secret(&stored)?;
        let settings = &mut stored.settings;
        let replace = |target: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *target = value;
            }
        };
        replace(&mut settings.name, change.name);
        replace(&mut settings.issuer, change.issuer);
        replace(&mut settings.authorization_url, change.authorization_url);
        replace(&mut settings.token_url, change.token_url);
        replace(&mut settings.userinfo_url, change.userinfo_url);
        replace(&mut settings.emails_url, change.emails_url);
        replace(&mut settings.team_id, change.team_id);
        replace(&mut settings.key_id, change.key_id);
        if let Some(client_id) = change.client_id {
            settings.client_id = client_id;
        }
        if change.scopes.is_some() {
            settings.scopes = change.scopes;
        }
        for (target, value) in [
            (&mut settings.allow_sign_up, change.allow_sign_up),
            (&mut settings.trust_email_verified, change.trust_email_verified),
            (&mut settings.trust_amr, change.trust_amr),
            (&mut settings.keep_tokens, change.keep_tokens),
        ] {
            if value.is_some() {
                *target = value;
            }
        }
        // Built with its secret (the new one, else the kept one): Apple's key is checked.
        let mut with_secret = settings.clone();
        with_secret.client_secret = match &change.client_secret {
            Some(secret) => Some(secret.clone()),
            None => kept_secret,
        };
        let provider =
            with_secret.build(false).map_err(|issue| DomainError::Validation(vec![issue]))?;
        self.check_targets(&provider).await?;
        if let Some(secret) = change.client_secret.as_deref() {
            stored.client_secret = self.sealed_secret(id, Some(secret))?;
        }
        stored.updated_at = self.clock.now();
        let event = self.provider_event("identity_provider.updated", admin, &provider, context);
        if !self.stored.update_provider(&stored, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        self.admin_view(&stored)
    }

    /// Removes an admin-added provider. Identities linked through it stay (re-adding a provider
    /// with the same id signs them in again) but cannot be used meanwhile.
    pub async fn delete_provider(
        &self,
        admin: &AdminPrincipal,
        id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let stored = self.stored_or_refused(id).await?;
        let provider = self.open_stored(&stored)?;
        let event = self.provider_event("identity_provider.deleted", admin, &provider, context);
        if !self.stored.delete_provider(id, &[event]).await? {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }
}
