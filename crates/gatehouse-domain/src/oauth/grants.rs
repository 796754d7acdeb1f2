//! The token endpoint's grants: authorization_code (PKCE, single use, replay revokes),
//! refresh_token (rotation and reuse detection shared with first-party sessions) and
//! client_credentials.

use serde::Serialize;

use super::claims::IdTokenRequest;
use super::client::{
    ClientRecord, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN,
};
use super::resources::ResourceServerRecord;
use super::{
    OAuthError, OAuthService, SCOPE_OFFLINE_ACCESS, SCOPE_OPENID, SCOPE_ORGANIZATION, split_scope,
};
use crate::audit::AuditEvent;
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::{RefreshTokenRecord, RevokeReason, SessionRecord};
use crate::store::{Conflict, StoreError};
use crate::tokens::{AccessTokenGrant, REFRESH_TOKEN};
use crate::unit_of_work::{SpentCode, UnitOfWork};
use crate::users::UserRecord;

/// The token endpoint's answer (RFC 6749 §5.1, OIDC §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

/// What a new user grant is for.
pub(super) struct UserGrant<'a> {
    pub scope: &'a str,
    pub auth_time: i64,
    /// How the user authenticated (RFC 8176, space-separated); `None` reads as `pwd`.
    pub amr: Option<String>,
    pub nonce: Option<String>,
    pub grant_type: &'a str,
    /// The digest of the authorization code this grant spends, in the session's transaction.
    pub spend_code: Option<Vec<u8>>,
    /// The organization chosen at authorization (`organization` scope); without one, the
    /// user's only organization, if they have exactly one.
    pub organization_id: Option<String>,
    /// The key of the DPoP proof sent with the request: the access tokens are bound to it,
    /// and so are a public client's refresh tokens.
    pub dpop_jkt: Option<&'a str>,
    /// The resources (RFC 8707) the grant is for.
    pub resources: Vec<String>,
    /// The one resource this token request asked for.
    pub resource: Option<&'a str>,
}

fn invalid_code() -> OAuthError {
    OAuthError::InvalidGrant("the authorization code is invalid, expired or used".into())
}

/// What a token request binds its access token to: the key of its DPoP proof, and the
/// resource (RFC 8707) it names.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenTarget<'a> {
    pub dpop_jkt: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// `DPoP` for a token bound to a key, else `Bearer` (RFC 9449 §5).
fn token_type(dpop_jkt: Option<&str>) -> &'static str {
    if dpop_jkt.is_some() { super::dpop::DPOP_TOKEN_TYPE } else { "Bearer" }
}

fn check_grant(client: &ClientRecord, grant: &str) -> Result<(), OAuthError> {
    if client.allows_grant(grant) {
        Ok(())
    } else {
        Err(OAuthError::UnauthorizedClient(format!("this client may not use {grant}")))
    }
}

impl OAuthService {
    /// `grant_type=authorization_code`. Everything the code is bound to (client, expiry,
    /// redirect URI, PKCE verifier) is checked before it is spent, so a wrong client or a
    /// mistyped parameter never burns a legitimate client's code; it is then spent in the
    /// transaction that opens the session, which records that session on the code (a replay
    /// revokes it; no window where a spent code names no session).
    pub async fn exchange_code(
        &self,
        client: &ClientRecord,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        target: TokenTarget<'_>,
        context: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let TokenTarget { dpop_jkt, resource } = target;
        check_grant(client, GRANT_AUTHORIZATION_CODE)?;
        let now = self.clock.now();
        let digest = self.code_digester.digest(code.as_bytes());
        let record = self.store.authorization_code(&digest).await?.ok_or_else(invalid_code)?;
        if record.used_at.is_some() {
            self.revoke_replayed_code(&record, context).await?;
            return Err(invalid_code());
        }
        if record.client_id != client.client_id || record.expires_at <= now {
            return Err(invalid_code());
        }
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri does not match the authorization request".into(),
            ));
        }
        match (&record.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                let valid_verifier = (43..=128).contains(&verifier.len())
                    && verifier.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                    });
                let computed = gatehouse_crypto::pkce_s256(verifier);
                if !valid_verifier
                    || !gatehouse_crypto::constant_time_eq(
                        computed.as_bytes(),
                        challenge.as_bytes(),
                    )
                {
                    return Err(OAuthError::InvalidGrant(
                        "the PKCE code_verifier does not match".into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::InvalidGrant("code_verifier is required".into()));
            }
            (None, Some(_)) => {
                return Err(OAuthError::InvalidGrant(
                    "no code_challenge was sent for this code".into(),
                ));
            }
            (None, None) => {}
        }
        // A code bound to a DPoP key (RFC 9449 §10) is exchanged only with a proof of it.
        if record.dpop_jkt.as_deref().is_some_and(|bound| dpop_jkt != Some(bound)) {
            return Err(OAuthError::InvalidGrant(
                "the authorization code is bound to another DPoP key".into(),
            ));
        }
        let user = self.users.user_by_id(&record.user_id).await?.ok_or_else(invalid_code)?;
        if user.suspended_at.is_some() {
            return Err(invalid_code());
        }
        let granted = self
            .grant_for_user(
                client,
                &user,
                UserGrant {
                    scope: &record.scope,
                    auth_time: record.auth_time,
                    amr: record.amr.clone(),
                    nonce: record.nonce.clone(),
                    grant_type: GRANT_AUTHORIZATION_CODE,
                    spend_code: Some(digest.to_vec()),
                    organization_id: record.organization_id.clone(),
                    dpop_jkt,
                    resources: record.resources.clone(),
                    resource,
                },
                context,
            )
            .await;
        match granted {
            Ok((response, _)) => Ok(response),
            // Another exchange spent it between our read and our write: a replay.
            Err(OAuthError::InvalidGrant(_)) => {
                if let Some(record) = self.store.authorization_code(&digest).await?
                    && record.used_at.is_some()
                {
                    self.revoke_replayed_code(&record, context).await?;
                }
                Err(invalid_code())
            }
            Err(other) => Err(other),
        }
    }

    /// A replayed code means it leaked: revoke what its first exchange issued.
    async fn revoke_replayed_code(
        &self,
        record: &super::store::AuthorizationCodeRecord,
        context: &RequestContext,
    ) -> Result<(), OAuthError> {
        if let Some(session_id) = &record.issued_session_id {
            let now = self.clock.now();
            let event = AuditEvent::new("oauth.code_reused", &Actor::Anonymous, context, now)
                .target("session", session_id)
                .metadata(serde_json::json!({ "client_id": record.client_id }));
            self.session_store
                .revoke_session(session_id, now, RevokeReason::AuthorizationCodeReuse, &[event])
                .await?;
        }
        Ok(())
    }

    /// A new grant of `scope` to `client` for `user`: a session (with a refresh token when
    /// `offline_access` was granted and the client may refresh), then the tokens.
    pub(super) async fn grant_for_user(
        &self,
        client: &ClientRecord,
        user: &UserRecord,
        grant: UserGrant<'_>,
        context: &RequestContext,
    ) -> Result<(TokenResponse, String), OAuthError> {
        let UserGrant {
            scope,
            auth_time,
            amr,
            nonce,
            grant_type,
            spend_code,
            organization_id,
            dpop_jkt,
            resources,
            resource,
        } = grant;
        let now = self.clock.now();
        let scopes = split_scope(scope);
        let organization_id = match organization_id {
            Some(id) => Some(id),
            None if scopes.iter().any(|scope| scope == SCOPE_ORGANIZATION) => {
                let mut choices = self.tokens.organizations_of(&user.id).await?;
                (choices.len() == 1).then(|| choices.remove(0).id)
            }
            None => None,
        };
        let lifetime = self.tokens.settings().session_max_lifetime_seconds;
        let session = SessionRecord {
            client_id: Some(client.client_id.clone()),
            scope: Some(scope.to_owned()),
            auth_time: Some(auth_time),
            nonce,
            amr,
            organization_id,
            // A public client has no other credential than its key to keep its refresh
            // tokens to itself (RFC 9449 §5): they are bound to it. A confidential client's
            // are bound to its authentication already.
            dpop_jkt: dpop_jkt.filter(|_| client.is_public()).map(str::to_owned),
            resources,
            ..SessionRecord::open(&user.id, context.device(), now, lifetime)
        };
        // The resource this token is for is settled before anything is written.
        let target = self.target_resource(&session, resource).await?;
        let wants_refresh = scopes.iter().any(|scope| scope == SCOPE_OFFLINE_ACCESS)
            && client.allows_grant(GRANT_REFRESH_TOKEN);
        let refresh = wants_refresh.then(|| {
            let (token, digest) = self.tokens.new_refresh_token();
            let ttl = client
                .refresh_token_ttl_seconds
                .unwrap_or(self.tokens.settings().refresh_token_ttl_seconds);
            (
                token,
                RefreshTokenRecord {
                    token_digest: digest,
                    session_id: session.id.clone(),
                    created_at: now,
                    expires_at: (now + ttl).min(session.expires_at),
                    rotated_at: None,
                },
            )
        });
        let event = AuditEvent::new("oauth.token_issued", &Actor::User(user.id.clone()), context, now)
            .target("session", &session.id)
            .metadata(serde_json::json!({ "client_id": client.client_id, "grant_type": grant_type, "scope": scope }));
        // The user row is not changed (only re-checked: a user suspended meanwhile gets no
        // session).
        let work = UnitOfWork {
            spend_code: spend_code.map(|digest| SpentCode {
                digest,
                at: now,
                session_id: session.id.clone(),
            }),
            ..UnitOfWork::events(vec![event])
        };
        self.session_store
            .start_session(
                &session,
                refresh.as_ref().map(|(_, record)| record),
                &crate::users::record::UserChange::default(),
                &work,
            )
            .await
            .map_err(|error| match error {
                StoreError::Conflict(Conflict::AuthorizationCodeSpent) => invalid_code(),
                other => other.into(),
            })?;
        let response = self
            .tokens_for_session(
                client,
                &session,
                user,
                refresh.map(|(token, _)| token),
                dpop_jkt,
                target.as_ref(),
            )
            .await?;
        Ok((response, session.id))
    }

    /// `grant_type=refresh_token`. A narrower `scope` may be asked for; never a wider one.
    pub async fn refresh(
        &self,
        client: &ClientRecord,
        refresh_token: &str,
        scope: Option<&str>,
        target: TokenTarget<'_>,
        context: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let TokenTarget { dpop_jkt, resource } = target;
        check_grant(client, GRANT_REFRESH_TOKEN)?;
        // A resource the grant does not include is refused before the token is spent.
        if let Some(named) = resource
            && REFRESH_TOKEN.recognises(refresh_token)
            && let Some((_, session)) = self
                .session_store
                .refresh_token(&self.tokens.refresh_token_digest(refresh_token))
                .await?
            && !session.resources.iter().any(|identifier| identifier == named)
        {
            return Err(OAuthError::InvalidTarget(format!("{named} was not granted")));
        }
        let (mut session, user, new_token) = self
            .sessions
            .rotate_refresh_token(
                refresh_token,
                Some(&client.client_id),
                client.refresh_token_ttl_seconds,
                dpop_jkt,
                context,
            )
            .await?;
        if let Some(requested) = scope {
            let granted = split_scope(session.scope.as_deref().unwrap_or(""));
            let requested = split_scope(requested);
            if requested.iter().any(|scope| !granted.contains(scope)) {
                return Err(OAuthError::InvalidScope(
                    "a refresh cannot widen the granted scope".into(),
                ));
            }
            session.scope = Some(requested.join(" "));
        }
        let target = self.target_resource(&session, resource).await?;
        self.tokens_for_session(client, &session, &user, Some(new_token), dpop_jkt, target.as_ref())
            .await
    }

    /// The resource a token request is for (RFC 8707): the one it names, which the grant must
    /// include; else the grant's only one; none for a grant without resources. A grant for
    /// several resources must name one: each access token is for one audience.
    async fn target_resource(
        &self,
        session: &SessionRecord,
        resource: Option<&str>,
    ) -> Result<Option<ResourceServerRecord>, OAuthError> {
        let identifier = match (resource, session.resources.as_slice()) {
            (Some(named), granted) if granted.iter().any(|identifier| identifier == named) => named,
            (Some(named), _) => {
                return Err(OAuthError::InvalidTarget(format!("{named} was not granted")));
            }
            (None, []) => return Ok(None),
            (None, [only]) => only.as_str(),
            (None, _) => {
                return Err(OAuthError::InvalidTarget(
                    "the grant is for several resources: name one with resource".into(),
                ));
            }
        };
        Ok(self.resources.resolve(&[identifier.to_owned()]).await?.pop())
    }

    /// `grant_type=client_credentials`: the client acts for itself; no user, no refresh token.
    pub async fn client_credentials(
        &self,
        client: &ClientRecord,
        scope: Option<&str>,
        target: TokenTarget<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let TokenTarget { dpop_jkt, resource } = target;
        check_grant(client, GRANT_CLIENT_CREDENTIALS)?;
        if client.is_public() {
            return Err(OAuthError::UnauthorizedClient(
                "public clients cannot use client_credentials".into(),
            ));
        }
        // A client acting for itself may name any registered resource (RFC 8707).
        let target = match resource {
            Some(identifier) => self.resources.resolve(&[identifier.to_owned()]).await?.pop(),
            None => None,
        };
        let scopes: Vec<String> = match scope {
            Some(scope) => split_scope(scope),
            None => {
                let all: Vec<String> = client
                    .scopes
                    .iter()
                    .filter(|s| *s != SCOPE_OPENID && *s != SCOPE_OFFLINE_ACCESS)
                    .cloned()
                    .collect();
                match &target {
                    Some(resource) => resource.narrow(&all),
                    None => all,
                }
            }
        };
        if let Some(resource) = &target
            && let Some(bad) = scopes.iter().find(|scope| !resource.accepts(scope))
        {
            return Err(OAuthError::InvalidScope(format!(
                "scope {bad} is not accepted by {}",
                resource.identifier
            )));
        }
        if let Some(bad) = scopes.iter().find(|scope| {
            !client.scopes.contains(scope)
                || *scope == SCOPE_OPENID
                || *scope == SCOPE_OFFLINE_ACCESS
        }) {
            return Err(OAuthError::InvalidScope(format!(
                "scope {bad} is not available to client_credentials"
            )));
        }
        let scope = scopes.join(" ");
        let (access_token, claims) = self
            .tokens
            .issue(AccessTokenGrant {
                subject: client.client_id.clone(),
                session_id: None,
                client_id: Some(client.client_id.clone()),
                scope: (!scope.is_empty()).then(|| scope.clone()),
                ttl_seconds: target
                    .as_ref()
                    .and_then(|resource| resource.access_token_ttl_seconds)
                    .or(client.access_token_ttl_seconds),
                dpop_jkt: dpop_jkt.map(str::to_owned),
                audience: target.map(|resource| resource.identifier),
                ..AccessTokenGrant::default()
            })
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: token_type(dpop_jkt),
            expires_in: claims.exp - claims.iat,
            refresh_token: None,
            id_token: None,
            scope,
        })
    }

    async fn tokens_for_session(
        &self,
        client: &ClientRecord,
        session: &SessionRecord,
        user: &UserRecord,
        refresh_token: Option<String>,
        dpop_jkt: Option<&str>,
        resource: Option<&ResourceServerRecord>,
    ) -> Result<TokenResponse, OAuthError> {
        let scope = session.scope.clone().unwrap_or_default();
        let scopes = split_scope(&scope);
        // A token for a resource carries only the granted scopes that resource accepts.
        let token_scope = match resource {
            Some(resource) => resource.narrow(&scopes).join(" "),
            None => scope.clone(),
        };
        // Read at every issue: a removal from the organization or a role change shows in the
        // next token (a refresh).
        let organization = if scopes.iter().any(|scope| scope == SCOPE_ORGANIZATION) {
            self.tokens.organization_claims(session).await?
        } else {
            None
        };
        let (access_token, claims) = self
            .tokens
            .issue(AccessTokenGrant {
                subject: user.id.clone(),
                session_id: Some(session.id.clone()),
                client_id: Some(client.client_id.clone()),
                scope: Some(token_scope.clone()),
                ttl_seconds: resource
                    .and_then(|resource| resource.access_token_ttl_seconds)
                    .or(client.access_token_ttl_seconds),
                auth_time: session.auth_time,
                amr: Some(session.amr_values()),
                organization: organization.clone(),
                actor: session.impersonator.clone(),
                dpop_jkt: dpop_jkt.map(str::to_owned),
                audience: resource.map(|resource| resource.identifier.clone()),
            })
            .await?;
        let id_token = if scopes.iter().any(|scope| scope == SCOPE_OPENID) {
            let view = self.directory.view(user)?;
            Some(
                self.issue_id_token(IdTokenRequest {
                    user: &view,
                    client_id: &client.client_id,
                    scopes: &scopes,
                    session_id: &session.id,
                    auth_time: session.auth_time.unwrap_or(session.created_at),
                    amr: session.amr_values(),
                    nonce: session.nonce.as_deref(),
                    access_token: &access_token,
                    organization: organization.as_ref(),
                })
                .await?,
            )
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: token_type(dpop_jkt),
            expires_in: claims.exp - claims.iat,
            refresh_token,
            id_token,
            scope: token_scope,
        })
    }
}
