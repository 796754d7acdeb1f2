//! Access tokens: JWTs (`typ: at+jwt`, RFC 9068 shape) signed by the active key, verifiable by
//! anyone holding the JWKS; and opaque refresh tokens, stored only as keyed digests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use gatehouse_crypto::{Digester, PublicKeySet, jsonwebtoken};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::DomainError;
use crate::keys::KeyService;

/// The `typ` header of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Refresh tokens: `gtr_…` with a checksum (`ghr_…` before), so secret scanners can
/// recognise a leaked one.
pub const REFRESH_TOKEN: gatehouse_crypto::SecretKind =
    gatehouse_crypto::SecretKind { prefix: "gtr_", legacy_prefix: "ghr_" };

/// Lifetimes and names, from configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    /// `aud` of first-party access tokens.
    pub audience: String,
    pub access_token_ttl_seconds: i64,
    /// Each refresh token lives this long (the window slides on every refresh)...
    pub refresh_token_ttl_seconds: i64,
    /// ...but never past this age of its session.
    pub session_max_lifetime_seconds: i64,
    /// A browser (hosted-page) session unused this long is refused and must sign in again.
    pub session_idle_timeout_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The session; absent for client_credentials tokens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// The OAuth client the token was issued to (RFC 9068); absent for first-party tokens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// When the user last authenticated on this session (OIDC `auth_time`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    /// How they authenticated (RFC 8176: `pwd`, `otp`, `sms`, `mfa`, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amr: Option<Vec<String>>,
    /// The session's active organization, its slug, the user's role there and that role's
    /// permissions, as they were when the token was issued.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub org_slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub org_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub org_permissions: Option<Vec<String>>,
    /// Who is acting as the subject (RFC 8693 `act`): the admin of an impersonation session.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub act: Option<ActClaim>,
    /// The key the token is bound to (RFC 9449 §6.1: `cnf.jkt`, a DPoP key's thumbprint):
    /// it is accepted only with a proof of possession of that key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<Confirmation>,
}

/// The confirmation claim of a sender-constrained token (RFC 7800, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The SHA-256 JWK thumbprint (RFC 7638) of the key the token is bound to.
    pub jkt: String,
}

/// The `act` claim (RFC 8693 §4.1): the party acting for the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActClaim {
    pub sub: String,
}

/// What a token says of the session's active organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationClaims {
    pub id: String,
    pub slug: String,
    pub role: String,
    pub permissions: Vec<String>,
}

/// An organization a user may act in, as an OAuth client's user chooses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationChoice {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// Where the token service reads a user's standing in an organization (the store, through
/// `organizations`); `None` when they are not a member.
#[async_trait::async_trait]
pub trait OrganizationClaimSource: Send + Sync {
    async fn organization_claims(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<OrganizationClaims>, crate::store::StoreError>;

    /// Every organization the user is a member of, by name (the OAuth `organization` scope's
    /// choice).
    async fn organizations_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<OrganizationChoice>, crate::store::StoreError>;
}

/// What an access token is issued for.
#[derive(Debug, Clone, Default)]
pub struct AccessTokenGrant {
    pub subject: String,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    /// Overrides the configured lifetime (per-client settings).
    pub ttl_seconds: Option<i64>,
    pub auth_time: Option<i64>,
    pub amr: Option<Vec<String>>,
    pub organization: Option<OrganizationClaims>,
    /// The admin acting as the subject (an impersonation session), as `act.sub`.
    pub actor: Option<String>,
    /// The DPoP key the token is bound to (`cnf.jkt`).
    pub dpop_jkt: Option<String>,
    /// The resource server the token is for (RFC 8707): its `aud`, instead of ours.
    pub audience: Option<String>,
}

pub struct TokenService {
    keys: Arc<KeyService>,
    clock: Arc<dyn Clock>,
    refresh_digester: Digester,
    settings: TokenSettings,
    verified: VerifiedTokens,
    organizations: Option<Arc<dyn OrganizationClaimSource>>,
}

/// How many verified access tokens [`VerifiedTokens`] remembers before it starts over.
const VERIFIED_TOKENS_CAPACITY: usize = 16_384;

/// Access tokens whose signature, type, issuer and audience have been checked against the
/// current key set, so a token presented again (a resource server introspecting, a client
/// calling userinfo or `/v1/me`) skips the RSA/ECDSA verification.
///
/// What is remembered is a pure function of the token and the key set: entries are keyed by a
/// digest under a per-process random key (the tokens themselves are not kept), belong to the
/// key set they were checked against (any reload of the keys starts an empty map), and expiry
/// is still checked on every use. Revocation and the session are never cached here: callers
/// ask the store every time.
struct VerifiedTokens {
    digester: Digester,
    inner: Mutex<VerifiedInner>,
}

#[derive(Default)]
struct VerifiedInner {
    key_set: Option<Arc<PublicKeySet>>,
    claims: HashMap<[u8; 32], Arc<AccessTokenClaims>>,
}

impl VerifiedTokens {
    fn new() -> Self {
        Self { digester: Digester::ephemeral(), inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VerifiedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(
        &self,
        key_set: &Arc<PublicKeySet>,
        digest: &[u8; 32],
    ) -> Option<Arc<AccessTokenClaims>> {
        let inner = self.lock();
        match &inner.key_set {
            Some(known) if Arc::ptr_eq(known, key_set) => inner.claims.get(digest).cloned(),
            _ => None,
        }
    }

    fn insert(
        &self,
        key_set: &Arc<PublicKeySet>,
        digest: [u8; 32],
        claims: Arc<AccessTokenClaims>,
        now: i64,
    ) {
        let mut inner = self.lock();
        if !inner.key_set.as_ref().is_some_and(|known| Arc::ptr_eq(known, key_set)) {
            inner.key_set = Some(Arc::clone(key_set));
            inner.claims.clear();
        }
        if inner.claims.len() >= VERIFIED_TOKENS_CAPACITY {
            inner.claims.retain(|_, claims| claims.exp + ACCESS_TOKEN_LEEWAY_SECONDS >= now);
            if inner.claims.len() >= VERIFIED_TOKENS_CAPACITY {
                inner.claims.clear();
            }
        }
        inner.claims.insert(digest, claims);
    }
}

/// Clock skew tolerated on `exp`.
const ACCESS_TOKEN_LEEWAY_SECONDS: i64 = 30;

impl TokenService {
    pub fn new(
        keys: Arc<KeyService>,
        clock: Arc<dyn Clock>,
        refresh_digester: Digester,
        settings: TokenSettings,
    ) -> Self {
        Self {
            keys,
            clock,
            refresh_digester,
            settings,
            verified: VerifiedTokens::new(),
            organizations: None,
        }
    }

    /// Reads organization claims from `source` for sessions with an active organization.
    pub fn with_organization_claims(mut self, source: Arc<dyn OrganizationClaimSource>) -> Self {
        self.organizations = Some(source);
        self
    }

    /// The claims of the session's active organization, read now (a removal or a role change
    /// shows in the next token); `None` without one, or when the user left it.
    pub async fn organization_claims(
        &self,
        session: &crate::sessions::record::SessionRecord,
    ) -> Result<Option<OrganizationClaims>, DomainError> {
        match (&session.organization_id, &self.organizations) {
            (Some(organization_id), Some(source)) => {
                Ok(source.organization_claims(organization_id, &session.user_id).await?)
            }
            _ => Ok(None),
        }
    }

    /// The organizations the user is a member of (none when organizations are not wired).
    pub async fn organizations_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<OrganizationChoice>, DomainError> {
        match &self.organizations {
            Some(source) => Ok(source.organizations_of(user_id).await?),
            None => Ok(Vec::new()),
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// How long a first-party session's access token lives: the configured lifetime, but an
    /// impersonation session's tokens never outlive the session.
    pub fn access_token_lifetime(&self, session: &crate::sessions::record::SessionRecord) -> i64 {
        let configured = self.settings.access_token_ttl_seconds;
        match session.impersonator {
            Some(_) => (session.expires_at - self.clock.now()).clamp(1, configured),
            None => configured,
        }
    }

    /// A signed access token for a first-party session, carrying its `auth_time` and `amr`.
    pub async fn issue_access_token(
        &self,
        session: &crate::sessions::record::SessionRecord,
    ) -> Result<String, DomainError> {
        let ttl_seconds = Some(self.access_token_lifetime(session));
        let grant = AccessTokenGrant {
            subject: session.user_id.clone(),
            session_id: Some(session.id.clone()),
            auth_time: session.auth_time,
            amr: Some(session.amr_values()),
            organization: self.organization_claims(session).await?,
            actor: session.impersonator.clone(),
            dpop_jkt: session.dpop_jkt.clone(),
            ttl_seconds,
            ..AccessTokenGrant::default()
        };
        Ok(self.issue(grant).await?.0)
    }

    /// A signed access token and its claims.
    pub async fn issue(
        &self,
        grant: AccessTokenGrant,
    ) -> Result<(String, AccessTokenClaims), DomainError> {
        let now = self.clock.now();
        let claims = AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub: grant.subject,
            aud: grant.audience.unwrap_or_else(|| self.settings.audience.clone()),
            exp: now + grant.ttl_seconds.unwrap_or(self.settings.access_token_ttl_seconds),
            iat: now,
            jti: gatehouse_crypto::new_id("at"),
            sid: grant.session_id,
            client_id: grant.client_id,
            scope: grant.scope,
            auth_time: grant.auth_time,
            amr: grant.amr,
            org_id: grant.organization.as_ref().map(|org| org.id.clone()),
            org_slug: grant.organization.as_ref().map(|org| org.slug.clone()),
            org_role: grant.organization.as_ref().map(|org| org.role.clone()),
            org_permissions: grant.organization.map(|org| org.permissions),
            act: grant.actor.map(|sub| ActClaim { sub }),
            cnf: grant.dpop_jkt.map(|jkt| Confirmation { jkt }),
        };
        let signer = self.keys.active_signer().await?;
        Ok((sign(signer, ACCESS_TOKEN_TYPE, &claims).await?, claims))
    }

    /// Signs other JWTs (ID tokens) with the active key; returns the token and the key's
    /// algorithm.
    pub async fn sign_jwt<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<(String, gatehouse_crypto::SigningAlgorithm), DomainError> {
        let signer = self.keys.active_signer().await?;
        let algorithm = signer.algorithm();
        Ok((sign(signer, typ, claims).await?, algorithm))
    }

    /// Checks signature, type, issuer, audience and expiry. Whether the session still lives is
    /// the caller's question (the session service asks the store).
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, DomainError> {
        let claims = self.verify_issued_access_token(token).await?;
        // Ours only: a token for a registered resource server (RFC 8707) opens nothing here.
        if claims.aud != self.settings.audience {
            return Err(DomainError::InvalidToken);
        }
        Ok(claims)
    }

    /// An access token we issued, for any audience (our own or a resource server's):
    /// introspection answers about both.
    pub async fn verify_issued_access_token(
        &self,
        token: &str,
    ) -> Result<AccessTokenClaims, DomainError> {
        let verifier = self.keys.verifier().await?;
        let digest = self.verified.digester.digest(token.as_bytes());
        let claims = match self.verified.get(&verifier, &digest) {
            Some(claims) => claims,
            None => {
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                validation.set_issuer(&[&self.settings.issuer]);
                // The audience is checked by the caller: ours, or any (introspection).
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
                validation.leeway = ACCESS_TOKEN_LEEWAY_SECONDS as u64;
                let claims: AccessTokenClaims =
                    match verifier.verify(token, Some(ACCESS_TOKEN_TYPE), &validation) {
                        Ok(claims) => claims,
                        // A kid this instance has not seen: another one may have rotated.
                        Err(_) => match jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
                        {
                            Some(kid) if !verifier.has_kid(&kid) => self
                                .keys
                                .verifier_knowing(&kid)
                                .await?
                                .verify(token, Some(ACCESS_TOKEN_TYPE), &validation)
                                .map_err(|_| DomainError::InvalidToken)?,
                            _ => return Err(DomainError::InvalidToken),
                        },
                    };
                let claims = Arc::new(claims);
                self.verified.insert(&verifier, digest, Arc::clone(&claims), self.clock.now());
                claims
            }
        };
        // jsonwebtoken checks `exp` against the system clock on the first verification; ours
        // has the last word, on every use (an injected clock in tests, skew handling).
        if claims.exp + ACCESS_TOKEN_LEEWAY_SECONDS < self.clock.now() {
            return Err(DomainError::InvalidToken);
        }
        Ok(AccessTokenClaims::clone(&claims))
    }

    /// Reads an ID token we issued, for `id_token_hint`: the signature and issuer must check
    /// out; expiry does not matter (logging out with an old ID token is the normal case).
    pub async fn verify_id_token_hint(
        &self,
        token: &str,
    ) -> Result<serde_json::Value, DomainError> {
        let verifier = self.keys.verifier().await?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        verifier.verify(token, Some("JWT"), &validation).map_err(|_| DomainError::InvalidToken)
    }

    /// A new random refresh token and the digest under which it is stored.
    pub fn new_refresh_token(&self) -> (String, Vec<u8>) {
        let token = REFRESH_TOKEN.generate();
        let digest = self.refresh_token_digest(&token);
        (token, digest)
    }

    pub fn refresh_token_digest(&self, token: &str) -> Vec<u8> {
        self.refresh_digester.digest(token.as_bytes()).to_vec()
    }
}

/// Signs `claims` with `signer`. An RSA signature takes a few hundred microseconds of CPU: it
/// runs on the process's signing threads (one per core), so the runtime's workers go on
/// answering the requests waiting on them (on SQLite a writer that holds the write lock would otherwise wait behind signatures
/// for its next step, and every other writer with it). ECDSA and Ed25519 sign in tens of
/// microseconds, on the spot.
async fn sign<T: Serialize>(
    signer: Arc<gatehouse_crypto::SigningKey>,
    typ: &str,
    claims: &T,
) -> Result<String, DomainError> {
    if signer.algorithm() != gatehouse_crypto::SigningAlgorithm::RS256 {
        return Ok(signer.sign(typ, claims)?);
    }
    let claims = serde_json::to_vec(claims)
        .map_err(|error| DomainError::Internal(format!("claims: {error}")))?;
    let typ = typ.to_owned();
    gatehouse_crypto::signing::on_signing_thread(move || signer.sign_serialized(&typ, &claims))
        .await?
        .map_err(DomainError::from)
}
