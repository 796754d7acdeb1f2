//! Federation: sign-in through upstream OpenID Connect and OAuth 2 providers, and the
//! identities (provider, subject) linked to users.
//!
//! Rules:
//! - A flow (`/sso/{id}` → upstream → `/sso/{id}/callback`) carries `state`, PKCE S256 and, for
//!   OpenID kinds, a `nonce`; all three live in a cookie sealed under the `sso-flow` data key
//!   (AD = the provider id) that expires after ten minutes. The callback's `state` must equal
//!   the cookie's (constant time), so a code can only finish the flow of the browser that
//!   began it.
//! - An identity links to one user. An unknown identity links to the account with the same
//!   address only when the upstream says the address is verified *and* the provider is trusted
//!   for that (`trust_email_verified`); otherwise the person signs in to the account first and
//!   links from `/account`. With no such account, one is created when the provider and the
//!   server allow sign-up.
//! - A sign-in through a provider is a first factor: the account's second step follows, unless
//!   the provider is trusted for its `amr` and the upstream asserted a second factor.
//! - The last way to sign in cannot be unlinked.
//! - A provider set to keep tokens (`keep_tokens`) has the upstream's access and refresh
//!   tokens of each sign-in sealed under `upstream-tokens` (AD = the identity id); admins read
//!   the access token (renewed through the refresh token when it has expired), never the
//!   refresh token.
//! - Apple posts its callback cross-site (`form_post`) and sends the person's name only once,
//!   beside the code (the `user` field): the name is taken from there for a new account; the
//!   address never is (only the signed ID token's).

pub mod admin;
pub mod provider;
pub mod record;
pub mod store;
pub mod tokens;
pub mod upstream;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::FieldCipher;

pub use provider::{
    ClaimMapping, ClaimOverrides, ClientKey, IdentityProvider, ProviderKind, ProviderSettings,
    ProviderSummary, valid_provider_id,
};
pub use record::{IdentityRecord, IdentityView, KeptTokens, SsoFlow, UpstreamTokenView};
pub use store::{IdentityStore, ProviderStore, StoredProvider};
pub use upstream::{
    AuthorizationRequest, AuthorizationStart, CodeExchange, Upstream, UpstreamError,
    UpstreamIdentity, UpstreamTokens,
};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::error::{DomainError, FederationProblem};
use crate::outbound::OutboundGuard;
use crate::passkeys::store::PasskeyStore;
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::Amr;
use crate::sessions::store::SessionStore;
use crate::sign_in::{SignInOutcome, SignInService};
use crate::unit_of_work::{UnitOfWork, UnitOfWorkStore};
use crate::users::Email;
use crate::users::directory::UserDirectory;
use crate::users::store::UserStore;

/// Field-cipher purpose of the flow cookie (AD = the provider id).
pub const SSO_FLOW_PURPOSE: &str = "sso-flow";
/// Field-cipher purpose of admin-added providers' client secrets (AD = the provider id).
pub const PROVIDER_SECRET_PURPOSE: &str = "identity-provider-secret";
/// Field-cipher purpose of kept upstream tokens (AD = the identity id).
pub const UPSTREAM_TOKENS_PURPOSE: &str = "upstream-tokens";
/// How long a browser has between `/sso/{id}` and the callback.
pub const FLOW_TTL_SECONDS: i64 = 600;
/// The upstream `amr` values that name a second factor.
const SECOND_FACTOR_AMR: &[&str] = &["mfa", "otp", "hwk", "swk", "sms", "fpt", "face"];

#[derive(Debug, Clone)]
pub struct FederationSettings {
    /// This server's public base URL: callbacks are `<issuer>/sso/{id}/callback`.
    pub issuer: String,
    pub signup_enabled: bool,
    pub require_email_verification: bool,
    /// How recent a sign-in linking and unlinking need (the step-up window).
    pub reauthentication_max_age_seconds: i64,
}

/// What a finished flow did.
pub enum FederationOutcome {
    /// A sign-in (tokens, or the second step), to continue to `return_to`.
    SignedIn { outcome: SignInOutcome, return_to: String },
    /// An identity linked to the signed-in user who began the flow.
    Linked { return_to: String },
    /// The browser session's authentication renewed (a step-up through the provider).
    Reauthenticated { return_to: String },
}

/// What a flow is for besides a sign-in.
#[derive(Debug, Clone, Copy)]
pub enum FlowPurpose<'a> {
    SignIn,
    /// Link an identity to this signed-in user (a new way into the account: it needs a
    /// recent sign-in, as adding a passkey does).
    Link {
        principal: &'a crate::principal::Principal,
    },
    /// Renew this session's authentication (its user signs in again upstream).
    Reauthenticate {
        session_id: &'a str,
    },
}

/// The callback's query (or, from a provider that posts it, its form).
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    /// An upstream refusal (`access_denied`, ...).
    pub error: Option<String>,
    /// Apple, on the first sign-in only: `{"name":{"firstName","lastName"},"email"}`
    /// (unsigned: only the name is taken from it).
    pub user: Option<String>,
}

/// A begun flow: where to send the browser, and the sealed flow for its cookie.
#[derive(Debug, Clone)]
pub struct FlowStart {
    pub url: String,
    pub sealed_flow: String,
    /// The upstream comes back with a cross-site POST (Apple's `form_post`): the flow cookie
    /// must be `SameSite=None` (and so `Secure`) to travel with it.
    pub cross_site_callback: bool,
}

/// The longest Apple `user` field read.
const MAX_APPLE_USER_LENGTH: usize = 2048;

/// The first and last name of Apple's `user` field, each 1 to 100 characters.
fn apple_user_names(text: &str) -> (Option<String>, Option<String>) {
    if text.len() > MAX_APPLE_USER_LENGTH {
        return (None, None);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return (None, None);
    };
    let name = |key: &str| {
        value["name"][key]
            .as_str()
            .map(str::trim)
            .filter(|name| !name.is_empty() && name.chars().count() <= 100)
            .map(str::to_owned)
    };
    (name("firstName"), name("lastName"))
}

pub struct FederationService {
    sessions: Arc<dyn SessionStore>,
    /// The configuration file's (read-only).
    providers: Vec<IdentityProvider>,
    /// Admin-added ones, read at each use (every instance sees a new one at once).
    stored: Arc<dyn ProviderStore>,
    secret_cipher: FieldCipher,
    /// The SSRF rule for admin-added providers' URLs.
    guard: Arc<dyn OutboundGuard>,
    upstream: Arc<dyn Upstream>,
    identities: Arc<dyn IdentityStore>,
    users: Arc<dyn UserStore>,
    passkeys: Arc<dyn PasskeyStore>,
    work: Arc<dyn UnitOfWorkStore>,
    directory: Arc<UserDirectory>,
    sign_in: Arc<SignInService>,
    flow_cipher: FieldCipher,
    token_cipher: FieldCipher,
    clock: Arc<dyn Clock>,
    settings: FederationSettings,
}

/// What [`FederationService::new`] is built from.
pub struct FederationParts {
    pub sessions: Arc<dyn SessionStore>,
    pub providers: Vec<IdentityProvider>,
    pub stored: Arc<dyn ProviderStore>,
    pub secret_cipher: FieldCipher,
    pub guard: Arc<dyn OutboundGuard>,
    pub upstream: Arc<dyn Upstream>,
    pub identities: Arc<dyn IdentityStore>,
    pub users: Arc<dyn UserStore>,
    pub passkeys: Arc<dyn PasskeyStore>,
    pub work: Arc<dyn UnitOfWorkStore>,
    pub directory: Arc<UserDirectory>,
    pub sign_in: Arc<SignInService>,
    pub flow_cipher: FieldCipher,
    /// Seals kept upstream tokens (`upstream-tokens`).
    pub token_cipher: FieldCipher,
    pub clock: Arc<dyn Clock>,
    pub settings: FederationSettings,
}

fn problem(problem: FederationProblem) -> DomainError {
    DomainError::Federation(problem)
}

fn upstream_problem(error: UpstreamError) -> DomainError {
    match error {
        UpstreamError::Unavailable(reason) => {
            problem(FederationProblem::UpstreamUnavailable(reason))
        }
        UpstreamError::Rejected(reason) => problem(FederationProblem::IdentityRejected(reason)),
    }
}

impl FederationService {
    pub fn new(parts: FederationParts) -> FederationService {
        let FederationParts {
            sessions,
            providers,
            stored,
            secret_cipher,
            guard,
            upstream,
            identities,
            users,
            passkeys,
            work,
            directory,
            sign_in,
            flow_cipher,
            token_cipher,
            clock,
            settings,
        } = parts;
        FederationService {
            sessions,
            providers,
            stored,
            secret_cipher,
            guard,
            upstream,
            identities,
            users,
            passkeys,
            work,
            directory,
            sign_in,
            flow_cipher,
            token_cipher,
            clock,
            settings,
        }
    }

    /// Every provider: the file's, then the admin-added ones (oldest first). A stored one that
    /// no longer builds (its secret cannot be opened) is left out and logged.
    async fn all_providers(&self) -> Result<Vec<IdentityProvider>, DomainError> {
        let mut all = self.providers.clone();
        for stored in self.stored.stored_providers().await? {
            match self.open_stored(&stored) {
                Ok(provider) => all.push(provider),
                Err(error) => {
                    tracing::error!(%error, provider_id = %stored.settings.id, "an identity provider cannot be used");
                }
            }
        }
        Ok(all)
    }

    /// A stored provider with its secret opened, presets applied.
    fn open_stored(&self, stored: &StoredProvider) -> Result<IdentityProvider, DomainError> {
        let mut settings = stored.settings.clone();
        settings.client_secret = self.open_secret(stored)?;
        settings.build(false).map_err(|issue| {
            DomainError::Internal(format!("provider {}: {}", settings.id, issue.message))
        })
    }

    /// A stored provider's secret, opened.
    fn open_secret(&self, stored: &StoredProvider) -> Result<Option<String>, DomainError> {
        let Some(sealed) = &stored.client_secret else { return Ok(None) };
        let id = &stored.settings.id;
        let plain = self.secret_cipher.open(id.as_bytes(), sealed)?;
        String::from_utf8(plain.to_vec())
            .map(Some)
            .map_err(|_| DomainError::Internal(format!("provider {id} secret is not UTF-8")))
    }

    /// The providers for login buttons: the file's in its order, then the admin-added ones.
    pub async fn providers(&self) -> Result<Vec<ProviderSummary>, DomainError> {
        Ok(self
            .all_providers()
            .await?
            .into_iter()
            .map(|provider| ProviderSummary {
                id: provider.id,
                name: provider.name,
                kind: provider.kind.as_str(),
            })
            .collect())
    }

    async fn provider(&self, id: &str) -> Result<IdentityProvider, DomainError> {
        if let Some(provider) = self.providers.iter().find(|provider| provider.id == id) {
            return Ok(provider.clone());
        }
        if !valid_provider_id(id) {
            return Err(problem(FederationProblem::UnknownProvider));
        }
        match self.stored.stored_provider(id).await? {
            Some(stored) => self.open_stored(&stored),
            None => Err(problem(FederationProblem::UnknownProvider)),
        }
    }

    fn redirect_uri(&self, provider: &IdentityProvider) -> String {
        format!("{}/sso/{}/callback", self.settings.issuer.trim_end_matches('/'), provider.id)
    }

    /// Begins a flow: the upstream URL to send the browser to, and the sealed flow for its
    /// cookie.
    pub async fn begin(
        &self,
        provider_id: &str,
        return_to: &str,
        purpose: FlowPurpose<'_>,
    ) -> Result<FlowStart, DomainError> {
        let provider = &self.provider(provider_id).await?;
        if let FlowPurpose::Link { principal } = purpose {
            self.require_recent_authentication(principal)?;
        }
        let state = gatehouse_crypto::token::random_token();
        let nonce = gatehouse_crypto::token::random_token();
        let request = AuthorizationRequest {
            redirect_uri: self.redirect_uri(provider),
            state: state.clone(),
            nonce: nonce.clone(),
            fresh_login: matches!(purpose, FlowPurpose::Reauthenticate { .. }),
        };
        let start = self.upstream.start(provider, &request).await.map_err(upstream_problem)?;
        let flow = SsoFlow {
            provider_id: provider.id.clone(),
            state,
            nonce,
            pkce_verifier: start.pkce_verifier,
            return_to: return_to.to_owned(),
            link_user_id: match purpose {
                FlowPurpose::Link { principal } => Some(principal.user.id.clone()),
                _ => None,
            },
            reauth_session_id: match purpose {
                FlowPurpose::Reauthenticate { session_id } => Some(session_id.to_owned()),
                _ => None,
            },
            created_at: self.clock.now(),
        };
        let plain = serde_json::to_vec(&flow)
            .map_err(|error| DomainError::Internal(format!("sso flow: {error}")))?;
        let sealed = self.flow_cipher.seal(provider.id.as_bytes(), &plain)?;
        Ok(FlowStart {
            url: start.url,
            sealed_flow: URL_SAFE_NO_PAD.encode(sealed),
            cross_site_callback: provider.kind.posts_callback(),
        })
    }

    /// The flow of `sealed` if it is this provider's, unexpired, and `state` is its own.
    fn open_flow(
        &self,
        provider: &IdentityProvider,
        sealed: Option<&str>,
        state: Option<&str>,
    ) -> Result<SsoFlow, DomainError> {
        let invalid = || problem(FederationProblem::StateInvalid);
        let bytes =
            sealed.and_then(|text| URL_SAFE_NO_PAD.decode(text).ok()).ok_or_else(invalid)?;
        let plain = self.flow_cipher.open(provider.id.as_bytes(), &bytes).map_err(|_| invalid())?;
        let flow: SsoFlow = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        let state = state.ok_or_else(invalid)?;
        if flow.provider_id != provider.id
            || !gatehouse_crypto::constant_time_eq(flow.state.as_bytes(), state.as_bytes())
        {
            return Err(invalid());
        }
        if self.clock.now() - flow.created_at > FLOW_TTL_SECONDS {
            return Err(problem(FederationProblem::FlowExpired));
        }
        Ok(flow)
    }

    /// Finishes a flow at the callback: checks the state against the browser's flow, exchanges
    /// the code, and signs in (or links, for a flow begun from `/account`).
    pub async fn finish(
        &self,
        provider_id: &str,
        sealed_flow: Option<&str>,
        callback: Callback,
        trusted_device: Option<&str>,
        context: &RequestContext,
    ) -> Result<FederationOutcome, DomainError> {
        let provider = &self.provider(provider_id).await?;
        let flow = self.open_flow(provider, sealed_flow, callback.state.as_deref())?;
        if let Some(error) = callback.error {
            return Err(problem(FederationProblem::UpstreamRefused(error)));
        }
        let code = callback.code.ok_or(problem(FederationProblem::StateInvalid))?;
        let exchange = CodeExchange {
            redirect_uri: self.redirect_uri(provider),
            code,
            pkce_verifier: flow.pkce_verifier.clone(),
            nonce: flow.nonce.clone(),
            iss: callback.iss,
        };
        let mut identity =
            self.upstream.identity(provider, &exchange).await.map_err(upstream_problem)?;
        if provider.kind == ProviderKind::Apple
            && let Some(user) = callback.user.as_deref()
        {
            let (given, family) = apple_user_names(user);
            identity.given_name = identity.given_name.or(given);
            identity.family_name = identity.family_name.or(family);
        }
        if identity.subject.is_empty() {
            return Err(problem(FederationProblem::IdentityRejected("no subject".into())));
        }
        if let Some(session_id) = &flow.reauth_session_id {
            self.reauthenticate(provider, session_id, &identity, flow.created_at, context).await?;
            return Ok(FederationOutcome::Reauthenticated { return_to: flow.return_to });
        }
        match &flow.link_user_id {
            Some(user_id) => {
                self.link(provider, user_id, &identity, context).await?;
                Ok(FederationOutcome::Linked { return_to: flow.return_to })
            }
            None => {
                let outcome = self.sign_in(provider, &identity, trusted_device, context).await?;
                Ok(FederationOutcome::SignedIn { outcome, return_to: flow.return_to })
            }
        }
    }

    fn new_identity(
        &self,
        provider: &IdentityProvider,
        user_id: &str,
        identity: &UpstreamIdentity,
    ) -> Result<IdentityRecord, DomainError> {
        let id = gatehouse_crypto::new_id("idn");
        let email_ciphertext =
            match identity.email.as_deref().map(|text| Email::parse(text, "email")) {
                Some(Ok(email)) => Some(self.directory.seal_email(&id, &email)?),
                _ => None,
            };
        let now = self.clock.now();
        Ok(IdentityRecord {
            tokens_ciphertext: self.sealed_tokens(provider, &id, identity.tokens.as_ref())?,
            id,
            user_id: user_id.to_owned(),
            provider_id: provider.id.clone(),
            subject: identity.subject.clone(),
            email_ciphertext,
            created_at: now,
            last_used_at: Some(now),
        })
    }

    fn identity_event(
        &self,
        action: &str,
        user_id: &str,
        record: &IdentityRecord,
        context: &RequestContext,
    ) -> AuditEvent {
        AuditEvent::new(action, &Actor::User(user_id.to_owned()), context, self.clock.now())
            .target("identity", &record.id)
            .metadata(serde_json::json!({ "provider_id": record.provider_id }))
    }

    async fn link(
        &self,
        provider: &IdentityProvider,
        user_id: &str,
        identity: &UpstreamIdentity,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        if let Some(existing) =
            self.identities.identity_by_subject(&provider.id, &identity.subject).await?
        {
            return if existing.user_id == user_id {
                Ok(())
            } else {
                Err(problem(FederationProblem::IdentityTaken))
            };
        }
        self.users.user_by_id(user_id).await?.ok_or(DomainError::NotFound)?;
        let record = self.new_identity(provider, user_id, identity)?;
        let work = UnitOfWork {
            events: vec![self.identity_event("identity.linked", user_id, &record, context)],
            identity: Some(record),
            ..UnitOfWork::default()
        };
        self.work.commit(&work).await.map_err(identity_conflict)?;
        Ok(())
    }

    /// A step-up through the provider: the identity must be one the session's user linked, and
    /// the upstream must have signed the person in after the flow began (when it says when).
    async fn reauthenticate(
        &self,
        provider: &IdentityProvider,
        session_id: &str,
        identity: &UpstreamIdentity,
        flow_began: i64,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let session = self.sessions.session(session_id).await?.ok_or(DomainError::InvalidToken)?;
        if session.revoked_at.is_some() {
            return Err(DomainError::InvalidToken);
        }
        let linked = self.identities.identity_by_subject(&provider.id, &identity.subject).await?;
        let Some(linked) = linked.filter(|record| record.user_id == session.user_id) else {
            return Err(problem(FederationProblem::IdentityRejected(
                "not an identity of the signed-in account".into(),
            )));
        };
        // Allow a minute of clock difference with the upstream.
        if identity.auth_time.is_some_and(|at| at < flow_began - 60) {
            return Err(problem(FederationProblem::IdentityRejected(
                "the provider did not sign the person in again".into(),
            )));
        }
        let now = self.clock.now();
        let tokens = self.sealed_tokens(provider, &linked.id, identity.tokens.as_ref())?;
        let mut amr = session.amr_values();
        if !amr.iter().any(|value| value == Amr::Fed.as_str()) {
            amr.push(Amr::Fed.as_str().to_owned());
        }
        let event = AuditEvent::new(
            "user.reauthenticated",
            &Actor::User(session.user_id.clone()),
            context,
            now,
        )
        .target("session", &session.id)
        .metadata(serde_json::json!({ "amr": amr, "method": "sso", "provider_id": provider.id }));
        self.identities.touch_identity(&linked.id, now, tokens.as_deref()).await?;
        self.sessions
            .update_session_authentication(&session.id, now, &amr.join(" "), &[event])
            .await?;
        Ok(())
    }

    async fn sign_in(
        &self,
        provider: &IdentityProvider,
        identity: &UpstreamIdentity,
        trusted_device: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        let upstream_mfa = provider.trust_amr
            && identity.amr.iter().any(|value| SECOND_FACTOR_AMR.contains(&value.as_str()));
        if let Some(existing) =
            self.identities.identity_by_subject(&provider.id, &identity.subject).await?
        {
            let user =
                self.users.user_by_id(&existing.user_id).await?.ok_or(DomainError::NotFound)?;
            let tokens = self.sealed_tokens(provider, &existing.id, identity.tokens.as_ref())?;
            self.identities
                .touch_identity(&existing.id, self.clock.now(), tokens.as_deref())
                .await?;
            let event = self.identity_event("identity.used", &user.id, &existing, context);
            let work = UnitOfWork::events(vec![event]);
            return self
                .sign_in
                .sign_in_with_identity(user, upstream_mfa, work, trusted_device, context)
                .await;
        }
        let email = identity
            .email
            .as_deref()
            .and_then(|text| Email::parse(text, "email").ok())
            .ok_or(problem(FederationProblem::EmailMissing))?;
        let verified = identity.email_verified && provider.trust_email_verified;
        if let Some(user) =
            self.users.user_by_email_digest(&self.directory.email_digest(&email)).await?
        {
            if !verified {
                return Err(problem(FederationProblem::AccountExists));
            }
            let record = self.new_identity(provider, &user.id, identity)?;
            let events = vec![self.identity_event("identity.linked", &user.id, &record, context)];
            let work = UnitOfWork { events, identity: Some(record), ..UnitOfWork::default() };
            return self
                .sign_in
                .sign_in_with_identity(user, upstream_mfa, work, trusted_device, context)
                .await;
        }
        if !provider.allow_sign_up || !self.settings.signup_enabled {
            return Err(problem(FederationProblem::SignUpClosed));
        }
        if self.settings.require_email_verification && !verified {
            return Err(DomainError::EmailNotVerified);
        }
        let now = self.clock.now();
        let mut user = self.directory.new_account(&email, now)?;
        user.first_name = identity.given_name.clone().filter(|name| name.chars().count() <= 100);
        user.last_name = identity.family_name.clone().filter(|name| name.chars().count() <= 100);
        if verified {
            user.email_verified_at = Some(now);
        }
        let record = self.new_identity(provider, &user.id, identity)?;
        let actor = Actor::User(user.id.clone());
        let events = vec![
            AuditEvent::new("user.created", &actor, context, now)
                .target("user", &user.id)
                .metadata(serde_json::json!({ "method": "sso", "provider_id": provider.id })),
            self.identity_event("identity.linked", &user.id, &record, context),
        ];
        let work = UnitOfWork { events, identity: Some(record), ..UnitOfWork::default() };
        self.users.insert_user(&user, &work).await.map_err(|error| {
            match identity_conflict(error) {
                DomainError::Store(error) => DomainError::from_taken(error),
                other => other,
            }
        })?;
        self.sign_in
            .sign_in_with_identity(
                user,
                upstream_mfa,
                UnitOfWork::default(),
                trusted_device,
                context,
            )
            .await
    }

    /// The user's linked identities, oldest first.
    pub async fn identities(&self, user_id: &str) -> Result<Vec<IdentityView>, DomainError> {
        let records = self.identities.identities_of(user_id).await?;
        let providers = self.all_providers().await?;
        let mut views = Vec::with_capacity(records.len());
        for record in records {
            let email = match &record.email_ciphertext {
                Some(sealed) => Some(self.directory.open_address(&record.id, sealed)?),
                None => None,
            };
            let provider_name = providers
                .iter()
                .find(|provider| provider.id == record.provider_id)
                .map_or_else(|| record.provider_id.clone(), |provider| provider.name.clone());
            views.push(IdentityView {
                id: record.id,
                provider_id: record.provider_id,
                provider_name,
                email,
                created_at: record.created_at,
                last_used_at: record.last_used_at,
            });
        }
        Ok(views)
    }

    /// A sign-in within the step-up window, or `reauthentication_required`.
    fn require_recent_authentication(
        &self,
        principal: &crate::principal::Principal,
    ) -> Result<(), DomainError> {
        let session = &principal.session;
        let at = session.auth_time.unwrap_or(session.created_at);
        if at + self.settings.reauthentication_max_age_seconds < self.clock.now() {
            return Err(DomainError::ReauthenticationRequired);
        }
        Ok(())
    }

    /// Unlinks one of the user's identities (a recent sign-in needed); refused when it is their
    /// last way to sign in.
    pub async fn unlink(
        &self,
        principal: &crate::principal::Principal,
        identity_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        let user = &principal.user;
        let identities = self.identities.identities_of(&user.id).await?;
        let Some(record) = identities.iter().find(|record| record.id == identity_id) else {
            return Err(DomainError::NotFound);
        };
        self.require_recent_authentication(principal)?;
        let passkeys = self.passkeys.passkeys_of(&user.id).await?;
        let other_ways = usize::from(user.password_hash.is_some())
            + passkeys.iter().filter(|passkey| passkey.flagged_at.is_none()).count()
            + identities.len()
            - 1;
        if other_ways == 0 {
            return Err(problem(FederationProblem::LastSignInMethod));
        }
        let event = self.identity_event("identity.unlinked", &user.id, record, context);
        if !self.identities.unlink_identity(&user.id, identity_id, &[event]).await? {
            // Refused in the transaction (another removal raced this one and left it the last
            // way to sign in), or gone meanwhile.
            let still_there = self
                .identities
                .identities_of(&user.id)
                .await?
                .iter()
                .any(|record| record.id == identity_id);
            return Err(if still_there {
                problem(FederationProblem::LastSignInMethod)
            } else {
                DomainError::NotFound
            });
        }
        Ok(())
    }
}

/// An identity linked meanwhile (by a concurrent flow) as `sso_identity_taken`.
fn identity_conflict(error: crate::store::StoreError) -> DomainError {
    match error {
        crate::store::StoreError::Conflict(crate::store::Conflict::Identity) => {
            problem(FederationProblem::IdentityTaken)
        }
        other => DomainError::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::apple_user_names;

    #[test]
    fn apples_user_field_gives_the_name_and_nothing_else() {
        let user = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"x@example.com"}"#;
        assert_eq!(apple_user_names(user), (Some("Ada".into()), Some("Lovelace".into())));
        assert_eq!(apple_user_names(r#"{"name":{"firstName":" ","lastName":7}}"#), (None, None));
        assert_eq!(apple_user_names("not json"), (None, None));
        let long = format!(r#"{{"name":{{"firstName":"{}"}}}}"#, "a".repeat(101));
        assert_eq!(apple_user_names(&long), (None, None));
        let huge = format!(r#"{{"name":{{"firstName":"Ada"}},"pad":"{}"}}"#, "a".repeat(3000));
        assert_eq!(apple_user_names(&huge), (None, None));
    }
}
