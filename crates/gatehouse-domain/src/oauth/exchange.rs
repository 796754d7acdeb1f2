//! Token exchange (RFC 8693): a service holding a user's access token (the subject token)
//! gets a token for another resource that acts for that user — with its own access token as
//! the actor token (delegation: the new token's `act` names the actor), or without one
//! (impersonation). Who may do what is the target resource's policy: its
//! `delegation_clients` and `impersonation_clients` (and the client needs the token-exchange
//! grant). The new token is for that resource only (`aud`), carries at most the subject
//! token's scopes that the resource accepts, never outlives the subject's session, and comes
//! without a refresh token. Every exchange is audited (`oauth.token_exchanged`).

use std::sync::Arc;

use serde::Serialize;

use super::client::{ClientRecord, GRANT_TOKEN_EXCHANGE};
use super::resources::ResourceServerService;
use super::{OAuthError, OAuthStore, split_scope};
use crate::DomainError;
use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::principal::{Actor, RequestContext};
use crate::sessions::SessionStore;
use crate::tokens::{AccessTokenClaims, AccessTokenGrant, TokenService};

/// The only token type accepted and issued: our access tokens (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE_URI: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token exchange request's parameters (RFC 8693 §2.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeRequest<'a> {
    pub subject_token: &'a str,
    pub subject_token_type: &'a str,
    pub actor_token: Option<&'a str>,
    pub actor_token_type: Option<&'a str>,
    /// `resource` or `audience`: the registered resource the new token is for.
    pub resource: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub requested_token_type: Option<&'a str>,
    /// The key of the DPoP proof sent with the request, which the new token is bound to.
    pub dpop_jkt: Option<&'a str>,
}

/// The answer (RFC 8693 §2.2.1).
#[derive(Debug, Clone, Serialize)]
pub struct ExchangedToken {
    pub access_token: String,
    pub issued_token_type: &'static str,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

pub struct TokenExchangeService {
    store: Arc<dyn OAuthStore>,
    sessions: Arc<dyn SessionStore>,
    tokens: Arc<TokenService>,
    resources: Arc<ResourceServerService>,
    audit: Arc<dyn crate::audit::AuditStore>,
    clock: Arc<dyn Clock>,
}

fn invalid_request(text: &str) -> OAuthError {
    OAuthError::InvalidRequest(text.to_owned())
}

impl TokenExchangeService {
    pub fn new(
        store: Arc<dyn OAuthStore>,
        sessions: Arc<dyn SessionStore>,
        tokens: Arc<TokenService>,
        resources: Arc<ResourceServerService>,
        audit: Arc<dyn crate::audit::AuditStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, sessions, tokens, resources, audit, clock }
    }

    /// A live access token we issued (any audience): signature, expiry, not revoked, its
    /// session active; not sender-constrained (its key's proof is not part of an exchange).
    async fn live(&self, token: &str, what: &str) -> Result<AccessTokenClaims, OAuthError> {
        let refused = || OAuthError::InvalidGrant(format!("the {what} is invalid or expired"));
        let claims = match self.tokens.verify_issued_access_token(token).await {
            Ok(claims) => claims,
            Err(DomainError::Store(error)) => return Err(error.into()),
            Err(_) => return Err(refused()),
        };
        if self.store.is_access_token_revoked(&claims.jti).await? {
            return Err(refused());
        }
        if let Some(sid) = &claims.sid {
            match self.sessions.session(sid).await? {
                Some(session) if session.is_active(self.clock.now()) => {}
                _ => return Err(refused()),
            }
        }
        if claims.cnf.is_some() {
            return Err(OAuthError::InvalidGrant(format!("the {what} is DPoP-bound")));
        }
        Ok(claims)
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` for an authenticated
    /// confidential `client`.
    pub async fn exchange(
        &self,
        client: &ClientRecord,
        request: ExchangeRequest<'_>,
        context: &RequestContext,
    ) -> Result<ExchangedToken, OAuthError> {
        if !client.allows_grant(GRANT_TOKEN_EXCHANGE) || client.is_public() {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not exchange tokens".into(),
            ));
        }
        if request.subject_token_type != ACCESS_TOKEN_TYPE_URI {
            return Err(invalid_request("subject_token_type must be an access token"));
        }
        if request.requested_token_type.is_some_and(|requested| requested != ACCESS_TOKEN_TYPE_URI)
        {
            return Err(invalid_request("only access tokens are issued"));
        }
        match (request.actor_token, request.actor_token_type) {
            (Some(_), Some(ACCESS_TOKEN_TYPE_URI)) | (None, None) => {}
            (Some(_), _) => {
                return Err(invalid_request("actor_token_type must be an access token"));
            }
            (None, Some(_)) => return Err(invalid_request("actor_token_type without actor_token")),
        }
        let identifier = request
            .resource
            .ok_or_else(|| OAuthError::InvalidTarget("name the resource to exchange for".into()))?;
        let resource =
            self.resources.resolve(&[identifier.to_owned()]).await?.pop().ok_or_else(|| {
                OAuthError::InvalidTarget(format!("{identifier} is not registered"))
            })?;
        let subject = self.live(request.subject_token, "subject_token").await?;
        // A user's token: a client's own (client_credentials) token has no user to act for.
        if subject.sid.is_none() {
            return Err(OAuthError::InvalidGrant("the subject_token names no user".into()));
        }
        let actor = match request.actor_token {
            Some(token) => Some(self.live(token, "actor_token").await?),
            None => None,
        };
        let allowed = match &actor {
            Some(_) => &resource.delegation_clients,
            None => &resource.impersonation_clients,
        };
        if !allowed.iter().any(|id| id == &client.client_id) {
            return Err(OAuthError::UnauthorizedClient(format!(
                "{} does not allow this client to exchange tokens{}",
                resource.identifier,
                if actor.is_some() { "" } else { " without an actor token" }
            )));
        }
        // Never more than the subject had, and only what the resource accepts.
        let held = split_scope(subject.scope.as_deref().unwrap_or(""));
        let available = resource.narrow(&held);
        let scopes = match request.scope {
            Some(requested) => {
                let requested = split_scope(requested);
                if let Some(extra) = requested.iter().find(|scope| !available.contains(scope)) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {extra} is not held by the subject_token or not accepted by the resource"
                    )));
                }
                requested
            }
            None => available,
        };
        let scope = scopes.join(" ");
        // The new token lives no longer than the subject token.
        let now = self.clock.now();
        let ttl = resource
            .access_token_ttl_seconds
            .or(client.access_token_ttl_seconds)
            .unwrap_or(self.tokens.settings().access_token_ttl_seconds)
            .min(subject.exp - now)
            .max(1);
        let (access_token, claims) = self
            .tokens
            .issue(AccessTokenGrant {
                subject: subject.sub.clone(),
                session_id: subject.sid.clone(),
                client_id: Some(client.client_id.clone()),
                scope: Some(scope.clone()),
                ttl_seconds: Some(ttl),
                auth_time: subject.auth_time,
                amr: subject.amr.clone(),
                actor: actor.as_ref().map(|actor| actor.sub.clone()),
                dpop_jkt: request.dpop_jkt.map(str::to_owned),
                audience: Some(resource.identifier.clone()),
                ..AccessTokenGrant::default()
            })
            .await?;
        let event = AuditEvent::new(
            "oauth.token_exchanged",
            &Actor::User(subject.sub.clone()),
            context,
            now,
        )
        .target("resource_server", &resource.id)
        .metadata(serde_json::json!({
            "client_id": client.client_id,
            "resource": resource.identifier,
            "scope": scope,
            "actor": actor.as_ref().map(|actor| actor.sub.clone()),
            "impersonation": actor.is_none(),
        }));
        self.audit.append_audit_events(&[event]).await?;
        Ok(ExchangedToken {
            access_token,
            issued_token_type: ACCESS_TOKEN_TYPE_URI,
            token_type: if request.dpop_jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: claims.exp - claims.iat,
            scope,
        })
    }
}
