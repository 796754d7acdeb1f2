//! What every handler can reach: the domain services and the HTTP settings, built in `main`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use gatehouse_domain::admin_keys::AdminKeyService;
use gatehouse_domain::audit::AuditLog;
use gatehouse_domain::ratelimit::RateLimiter;
use gatehouse_domain::services::AccountServices;
use gatehouse_domain::{KeyService, ReadinessCheck};
use ipnet::IpNet;

use crate::browser::render::Pages;
use crate::documents::Documents;
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimitPolicy, RateLimits};

/// Limits and timeouts of the HTTP server, from configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body accepted; larger ones answer 413.
    pub body_limit_bytes: usize,
    /// A request that takes longer answers 408.
    pub request_timeout: Duration,
    /// How long one readiness check may take before it counts as failed.
    pub readiness_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Answers carry `Strict-Transport-Security` (production mode).
    pub strict_transport_security: bool,
    /// Cross-origin access to the first-party API (`/v1`).
    pub cors: CorsSettings,
    /// Client ID metadata documents are on (discovery advertises them).
    pub client_id_metadata_documents: bool,
}

/// The origins a browser app may call `/v1` from, with credentials (`cors.allowed_origins`).
#[derive(Clone, Debug)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`), compared byte for byte with `Origin`.
    pub allowed_origins: Vec<HeaderValue>,
    /// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`).
    pub max_age: HeaderValue,
}

impl CorsSettings {
    /// Origins as written in the settings; ones that cannot be a header value are dropped
    /// (the configuration's validation refuses them first).
    pub fn new(origins: &[String], max_age_seconds: u64) -> Self {
        Self {
            allowed_origins: origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
                .collect(),
            max_age: HeaderValue::from(max_age_seconds),
        }
    }

    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == origin)
    }
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self::new(&[], 3600)
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            readiness_timeout: Duration::from_secs(2),
            trusted_proxies: Vec::new(),
            strict_transport_security: false,
            cors: CorsSettings::default(),
            client_id_metadata_documents: false,
        }
    }
}

/// The handle every handler and middleware receives. One `Arc`, so the two clones a request
/// makes (middleware and handler state) are one atomic increment each, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl AppState {
    pub fn new(services: AppServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppServices {
    pub keys: Arc<KeyService>,
    /// Pre-serialised JWKS and discovery documents.
    pub documents: Arc<Documents>,
    /// The account services: sign-in, sessions, registration, passwords, email links, MFA,
    /// admin user management, and the directory the API reads users through.
    pub accounts: AccountServices,
    pub oauth: Arc<gatehouse_domain::oauth::OAuthService>,
    /// The OAuth client registry and client authentication.
    pub clients: Arc<gatehouse_domain::oauth::ClientService>,
    /// The device authorization grant (RFC 8628).
    pub device_flow: Arc<gatehouse_domain::oauth::DeviceFlowService>,
    /// Pushed authorization requests (RFC 9126).
    pub par: Arc<gatehouse_domain::oauth::par::PushedAuthorizationService>,
    /// DPoP proofs (RFC 9449): their checks, replay memory and server nonces.
    pub dpop: Arc<gatehouse_domain::oauth::dpop::DpopService>,
    /// Registered resource servers (RFC 8707), for the admin API.
    pub resource_servers: Arc<gatehouse_domain::oauth::resources::ResourceServerService>,
    /// Dynamic client registration (RFC 7591/7592) and its initial access tokens.
    pub registration: Arc<gatehouse_domain::oauth::registration::RegistrationService>,
    /// Token exchange (RFC 8693).
    pub token_exchange: Arc<gatehouse_domain::oauth::exchange::TokenExchangeService>,
    pub admin_keys: Arc<AdminKeyService>,
    /// Organizations, their members and roles.
    pub organizations: Arc<gatehouse_domain::organizations::OrganizationService>,
    /// Deleting one's own account, at once or after the grace period.
    pub account_deletions: Arc<gatehouse_domain::registration::deletion::AccountDeletionService>,
    /// API keys: users' and organizations' (`gtk_…`).
    pub api_keys: Arc<gatehouse_domain::api_keys::ApiKeyService>,
    /// Every organization, for admins.
    pub admin_organizations: Arc<gatehouse_domain::organizations::AdminOrganizationService>,
    /// Invitations to organizations.
    pub invitations: Arc<gatehouse_domain::organizations::InvitationService>,
    pub audit_log: Arc<AuditLog>,
    /// Webhook endpoints and their deliveries.
    pub webhooks: Arc<gatehouse_domain::webhooks::WebhookService>,
    /// Sign-in through upstream providers and linked identities.
    pub federation: Arc<gatehouse_domain::federation::FederationService>,
    /// The admin overview's counts (sign-ins per day, sessions, accounts).
    pub overview: Arc<gatehouse_domain::overview::AdminOverview>,
    /// The outbox as admins see it.
    pub deliveries: Arc<gatehouse_domain::notify::DeliveryService>,
    /// `None` when rate limiting is disabled.
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub rate_limits: RateLimits,
    pub readiness: Arc<[Arc<dyn ReadinessCheck>]>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<HttpSettings>,
    /// The hosted pages: templates, branding, cookie and CSRF keys.
    pub pages: Arc<Pages>,
}

impl AppServices {
    /// The rate-limit policy over this state's limiter and limits.
    pub(crate) fn rate_limit_policy(&self) -> RateLimitPolicy<'_> {
        RateLimitPolicy::new(self.rate_limiter.as_deref(), &self.rate_limits)
    }
}
