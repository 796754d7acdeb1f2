//! Claims by scope (OIDC Core §5.4) for userinfo and ID tokens, and ID token issuance.

use serde_json::{Map, Value, json};

use super::{OAuthService, SCOPE_EMAIL, SCOPE_PROFILE};
use crate::error::DomainError;
use crate::tokens::OrganizationClaims;
use crate::users::view::UserView;

/// The user's claims that the granted scopes allow.
pub fn user_claims(user: &UserView, scopes: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if scopes.iter().any(|scope| scope == SCOPE_PROFILE) {
        let name = match (&user.first_name, &user.last_name) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (Some(first), None) => Some(first.clone()),
            (None, Some(last)) => Some(last.clone()),
            (None, None) => None,
        };
        for (key, value) in [
            ("name", name),
            ("given_name", user.first_name.clone()),
            ("family_name", user.last_name.clone()),
            ("preferred_username", user.username.clone()),
            ("picture", user.image_url.clone()),
        ] {
            if let Some(value) = value {
                claims.insert(key.into(), json!(value));
            }
        }
        claims.insert("updated_at".into(), json!(user.updated_at));
    }
    if scopes.iter().any(|scope| scope == SCOPE_EMAIL)
        && let Some(email) = &user.email
    {
        claims.insert("email".into(), json!(email));
        claims.insert("email_verified".into(), json!(user.email_verified));
    }
    claims
}

/// What an ID token is issued for.
pub struct IdTokenRequest<'a> {
    pub user: &'a UserView,
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub session_id: &'a str,
    pub auth_time: i64,
    /// RFC 8176 methods; `acr` follows from them (`aal2` with `mfa`, else `aal1`).
    pub amr: Vec<String>,
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
    /// The session's organization (`organization` scope).
    pub organization: Option<&'a OrganizationClaims>,
}

/// The organization claims of the `organization` scope, as access tokens carry them.
pub fn insert_organization_claims(
    claims: &mut Map<String, Value>,
    organization: &OrganizationClaims,
) {
    claims.insert("org_id".into(), json!(organization.id));
    claims.insert("org_slug".into(), json!(organization.slug));
    claims.insert("org_role".into(), json!(organization.role));
    claims.insert("org_permissions".into(), json!(organization.permissions));
}

impl OAuthService {
    /// An ID token: iss, sub, aud, exp, iat, auth_time, nonce, amr, sid, at_hash, and the
    /// user claims of the granted scopes.
    pub(crate) async fn issue_id_token(
        &self,
        request: IdTokenRequest<'_>,
    ) -> Result<String, DomainError> {
        let now = self.clock.now();
        let mut claims = user_claims(request.user, request.scopes);
        claims.insert("iss".into(), json!(self.settings.issuer));
        claims.insert("aud".into(), json!(request.client_id));
        claims.insert("exp".into(), json!(now + self.settings.id_token_ttl_seconds));
        claims.insert("iat".into(), json!(now));
        claims.insert("auth_time".into(), json!(request.auth_time));
        // NIST SP 800-63B assurance levels, as Ory does: two factors are AAL2.
        let acr = if request.amr.iter().any(|method| method == "mfa") { "aal2" } else { "aal1" };
        claims.insert("acr".into(), json!(acr));
        claims.insert("amr".into(), json!(request.amr));
        claims.insert("sid".into(), json!(request.session_id));
        claims.insert(
            "at_hash".into(),
            json!(gatehouse_crypto::left_half_sha256(request.access_token)),
        );
        if let Some(nonce) = request.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        if let Some(organization) = request.organization {
            insert_organization_claims(&mut claims, organization);
        }
        Ok(self.tokens.sign_jwt("JWT", &Value::Object(claims)).await?.0)
    }
}
