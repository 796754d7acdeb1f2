//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and the user's control over
//! the applications they connected: listing consents and taking them back.

use super::OAuthService;
use super::store::ConnectedApplication;
use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::principal::Principal;
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::RevokeReason;

/// What an `end_session` request establishes.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLogout {
    /// Where to send the browser afterwards: only a URI registered for the identified client.
    pub redirect: Option<String>,
    /// The user the ID token names, to compare with the browser's session.
    pub hinted_user: Option<String>,
    /// The OAuth session the ID token belongs to, ended with the browser session.
    pub hinted_session: Option<String>,
    /// The browser session the ID token was issued in (through the code that opened
    /// `hinted_session`), when known.
    pub hinted_browser_session: Option<String>,
}

impl VerifiedLogout {
    /// Whether the browser may be signed out without asking: only when the ID token was
    /// issued in this very browser session. A hint from another browser, an earlier sign-in
    /// or the device flow proves nothing about who clicked the link, so the person confirms
    /// first (the page's form is CSRF-protected).
    pub fn is_for_browser_session(&self, principal: &Principal) -> bool {
        self.hinted_user.as_deref() == Some(principal.user.id.as_str())
            && self.hinted_browser_session.as_deref() == Some(principal.session.id.as_str())
    }
}

impl OAuthService {
    /// Checks an `end_session` request. An invalid `id_token_hint` is an error; a
    /// `post_logout_redirect_uri` that is not registered for the client (or with no client to
    /// check it against) is dropped, so logout is never an open redirect.
    pub async fn verify_logout(
        &self,
        request: &LogoutRequest,
    ) -> Result<VerifiedLogout, DomainError> {
        let mut client_id = request.client_id.clone();
        let mut hinted_user = None;
        let mut hinted_session = None;
        if let Some(hint) = &request.id_token_hint {
            let claims = self.tokens.verify_id_token_hint(hint).await?;
            let audience = match &claims["aud"] {
                serde_json::Value::String(aud) => Some(aud.clone()),
                serde_json::Value::Array(auds) => {
                    auds.first().and_then(|aud| aud.as_str()).map(str::to_owned)
                }
                _ => None,
            };
            if client_id.is_some() && client_id != audience {
                return Err(DomainError::Invalid(
                    "client_id does not match the id_token_hint".into(),
                ));
            }
            client_id = audience;
            hinted_user = claims["sub"].as_str().map(str::to_owned);
            hinted_session = claims["sid"].as_str().map(str::to_owned);
        }
        let mut redirect = None;
        if let (Some(uri), Some(client_id)) = (&request.post_logout_redirect_uri, &client_id)
            && let Some(client) = self.store.client(client_id).await?
            && client.post_logout_redirect_uris.iter().any(|registered| registered == uri)
            && let Ok(mut url) = url::Url::parse(uri)
        {
            if let Some(state) = &request.state {
                url.query_pairs_mut().append_pair("state", state);
            }
            redirect = Some(url.to_string());
        }
        let hinted_browser_session = match &hinted_session {
            Some(session_id) => self.store.browser_session_of(session_id).await?,
            None => None,
        };
        Ok(VerifiedLogout { redirect, hinted_user, hinted_session, hinted_browser_session })
    }

    /// Ends the OAuth session an ID token named, if it is the given user's.
    pub async fn end_hinted_session(
        &self,
        verified: &VerifiedLogout,
        user_id: &str,
        context: &RequestContext,
    ) -> Result<(), DomainError> {
        if let Some(session_id) = &verified.hinted_session
            && let Some(session) = self.session_store.session(session_id).await?
            && session.user_id == user_id
        {
            let now = self.clock.now();
            let event =
                AuditEvent::new("session.revoked", &Actor::User(user_id.to_owned()), context, now)
                    .target("session", session_id)
                    .metadata(serde_json::json!({ "reason": "signed_out", "via": "end_session" }));
            self.session_store
                .revoke_session(session_id, now, RevokeReason::SignedOut, &[event])
                .await?;
        }
        Ok(())
    }

    /// The applications the user has consented to.
    pub async fn connected_applications(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectedApplication>, DomainError> {
        Ok(self.store.consents_of_user(user_id).await?)
    }

    /// Takes back consent from one application and ends the sessions granted to it.
    pub async fn revoke_consent(
        &self,
        principal: &Principal,
        client_id: &str,
        context: &RequestContext,
    ) -> Result<bool, DomainError> {
        let now = self.clock.now();
        let event = AuditEvent::new(
            "oauth.consent_revoked",
            &Actor::User(principal.user.id.clone()),
            context,
            now,
        )
        .target("client", client_id);
        Ok(self.store.revoke_consent(&principal.user.id, client_id, now, &[event]).await?)
    }
}
