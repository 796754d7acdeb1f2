//! Introspection (RFC 7662), revocation (RFC 7009) and userinfo: answers about tokens, only
//! ever to the client the token belongs to.

use serde_json::{Map, Value, json};

use super::claims::{insert_organization_claims, user_claims};
use super::client::ClientRecord;
use super::{OAuthError, OAuthService, SCOPE_OPENID, SCOPE_ORGANIZATION, split_scope};
use crate::DomainError;
use crate::audit::AuditEvent;
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::RevokeReason;
use crate::tokens::{AccessTokenClaims, REFRESH_TOKEN};

fn inactive() -> Value {
    json!({ "active": false })
}

impl OAuthService {
    /// Verifies an access token issued to a client: signature, expiry, not revoked, and its
    /// session (if any) still active. `None` for a token that is not live; an error only when
    /// the answer cannot be known (the database is down: a live token must not be reported
    /// inactive because its revocation could not be read).
    async fn live_access_token(
        &self,
        token: &str,
    ) -> Result<Option<AccessTokenClaims>, OAuthError> {
        let claims = match self.tokens.verify_issued_access_token(token).await {
            Ok(claims) => claims,
            Err(DomainError::Store(error)) => return Err(error.into()),
            Err(_) => return Ok(None),
        };
        if claims.client_id.is_none() || self.store.is_access_token_revoked(&claims.jti).await? {
            return Ok(None);
        }
        if let Some(sid) = &claims.sid {
            match self.session_store.session(sid).await? {
                Some(session) if session.is_active(self.clock.now()) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(claims))
    }

    /// RFC 7662. A token of another client is reported inactive, like an unknown one.
    pub async fn introspect(
        &self,
        client: &ClientRecord,
        token: &str,
    ) -> Result<Value, OAuthError> {
        if REFRESH_TOKEN.claims(token) {
            if !REFRESH_TOKEN.recognises(token) {
                return Ok(inactive());
            }
            let digest = self.tokens.refresh_token_digest(token);
            let Some((record, session)) = self.session_store.refresh_token(&digest).await? else {
                return Ok(inactive());
            };
            let now = self.clock.now();
            if session.client_id.as_deref() != Some(client.client_id.as_str())
                || record.rotated_at.is_some()
                || record.expires_at <= now
                || !session.is_active(now)
            {
                return Ok(inactive());
            }
            let mut answer = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": client.client_id,
                "sub": session.user_id,
                "scope": session.scope.unwrap_or_default(),
                "exp": record.expires_at,
                "iat": record.created_at,
                "iss": self.settings.issuer,
                "sid": session.id,
            });
            if let Some(jkt) = session.dpop_jkt {
                answer["cnf"] = json!({ "jkt": jkt });
            }
            return Ok(answer);
        }
        let Some(claims) = self.live_access_token(token).await? else { return Ok(inactive()) };
        if claims.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Ok(inactive());
        }
        let mut answer = Map::new();
        answer.insert("active".into(), json!(true));
        // A DPoP-bound token says so, and names its key (RFC 9449 §6.2): the resource server
        // then wants a proof of that key with it.
        let token_type = if claims.cnf.is_some() { super::dpop::DPOP_TOKEN_TYPE } else { "Bearer" };
        answer.insert("token_type".into(), json!(token_type));
        if let Some(cnf) = &claims.cnf {
            answer.insert("cnf".into(), json!({ "jkt": cnf.jkt }));
        }
        answer.insert("client_id".into(), json!(claims.client_id));
        answer.insert("sub".into(), json!(claims.sub));
        answer.insert("scope".into(), json!(claims.scope.clone().unwrap_or_default()));
        answer.insert("exp".into(), json!(claims.exp));
        answer.insert("iat".into(), json!(claims.iat));
        answer.insert("iss".into(), json!(claims.iss));
        answer.insert("aud".into(), json!(claims.aud));
        answer.insert("jti".into(), json!(claims.jti));
        if let Some(sid) = &claims.sid {
            answer.insert("sid".into(), json!(sid));
        }
        Ok(Value::Object(answer))
    }

    /// RFC 7009: a refresh token ends its session (the family); an access token is denied
    /// until it expires. Unknown tokens and tokens of other clients are ignored (200 either
    /// way, so the answer reveals nothing).
    pub async fn revoke(
        &self,
        client: &ClientRecord,
        token: &str,
        context: &RequestContext,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        if REFRESH_TOKEN.claims(token) {
            if !REFRESH_TOKEN.recognises(token) {
                return Ok(());
            }
            let digest = self.tokens.refresh_token_digest(token);
            if let Some((_, session)) = self.session_store.refresh_token(&digest).await?
                && session.client_id.as_deref() == Some(client.client_id.as_str())
            {
                let event = AuditEvent::new("oauth.token_revoked", &Actor::Anonymous, context, now)
                    .target("session", &session.id)
                    .metadata(
                        json!({ "client_id": client.client_id, "token_type": "refresh_token" }),
                    );
                self.session_store
                    .revoke_session(&session.id, now, RevokeReason::RevokedByClient, &[event])
                    .await?;
            }
            return Ok(());
        }
        if let Ok(claims) = self.tokens.verify_issued_access_token(token).await
            && claims.client_id.as_deref() == Some(client.client_id.as_str())
        {
            self.store.revoke_access_token(&claims.jti, claims.exp).await?;
        }
        Ok(())
    }

    /// OIDC UserInfo: the claims of the token's scopes. Needs a live user token with `openid`.
    /// `proof_jkt`: the key of the DPoP proof presented with it (`Authorization: DPoP`),
    /// which a bound token requires and an unbound one refuses.
    pub async fn userinfo(
        &self,
        access_token: &str,
        proof_jkt: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let claims = self.live_access_token(access_token).await?.ok_or(OAuthError::InvalidToken)?;
        // A token for a resource server (RFC 8707) is for that API, not for userinfo.
        if claims.aud != self.tokens.settings().audience {
            return Err(OAuthError::InvalidToken);
        }
        if claims.cnf.as_ref().map(|cnf| cnf.jkt.as_str()) != proof_jkt {
            return Err(OAuthError::InvalidToken);
        }
        let scopes = split_scope(claims.scope.as_deref().unwrap_or(""));
        if claims.sid.is_none() {
            return Err(OAuthError::InvalidToken);
        }
        if !scopes.iter().any(|scope| scope == SCOPE_OPENID) {
            return Err(OAuthError::InsufficientScope);
        }
        let user = self.users.user_by_id(&claims.sub).await?.ok_or(OAuthError::InvalidToken)?;
        if user.suspended_at.is_some() {
            return Err(OAuthError::InvalidToken);
        }
        let view = self.directory.view(&user)?;
        let mut answer = user_claims(&view, &scopes);
        // The organization as it stands now (the session's choice, the current membership).
        if scopes.iter().any(|scope| scope == SCOPE_ORGANIZATION)
            && let Some(session_id) = &claims.sid
            && let Some(session) = self.session_store.session(session_id).await?
            && let Some(organization) = self.tokens.organization_claims(&session).await?
        {
            insert_organization_claims(&mut answer, &organization);
        }
        Ok(Value::Object(answer))
    }
}
