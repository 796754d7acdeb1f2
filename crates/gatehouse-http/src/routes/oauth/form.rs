//! Reading OAuth requests: `application/x-www-form-urlencoded` bodies where every parameter
//! appears at most once (RFC 6749 §3.1), and client authentication by HTTP Basic or form
//! fields (never both).

use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use base64::Engine as _;
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::client::JWT_BEARER_ASSERTION_TYPE;
use gatehouse_domain::oauth::clients::ClientCredentials;

use super::response::OAuthErrorResponse;

/// The form parameters, each present once — but `resource` (RFC 8707 §2), which may repeat.
pub(crate) struct OAuthForm {
    pub parameters: HashMap<String, String>,
    /// Every `resource` value, in order.
    pub resources: Vec<String>,
    pub authorization: Option<String>,
}

impl OAuthForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }

    /// The client's credentials: Basic (`client_secret_basic`), form fields
    /// (`client_secret_post`), or a bare `client_id` (public clients).
    pub fn client_credentials(&self) -> Result<ClientCredentials, OAuthErrorResponse> {
        let basic = self.authorization.as_deref().and_then(|value| value.strip_prefix("Basic "));
        if let Some(assertion_type) = self.get("client_assertion_type") {
            if assertion_type != JWT_BEARER_ASSERTION_TYPE {
                return Err(
                    OAuthError::InvalidRequest("unsupported client_assertion_type".into()).into()
                );
            }
            if basic.is_some() || self.get("client_secret").is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method".into(),
                )
                .into());
            }
            let assertion = self
                .get("client_assertion")
                .ok_or(OAuthError::InvalidRequest("client_assertion is required".into()))?;
            return Ok(ClientCredentials::Assertion {
                client_id: self.get("client_id").map(str::to_owned),
                assertion: assertion.to_owned(),
            });
        }
        match (basic, self.get("client_secret")) {
            (Some(_), Some(_)) => {
                Err(OAuthError::InvalidRequest("use one client authentication method".into())
                    .into())
            }
            (Some(encoded), None) => {
                let credentials = decode_basic(encoded)
                    .ok_or(OAuthErrorResponse::from(OAuthError::InvalidClient))?;
                if self.get("client_id").is_some_and(|id| id != credentials.0) {
                    return Err(OAuthError::InvalidRequest(
                        "client_id does not match the credentials".into(),
                    )
                    .into());
                }
                Ok(ClientCredentials::Basic { client_id: credentials.0, secret: credentials.1 })
            }
            (None, Some(secret)) => {
                let client_id = self.get("client_id").ok_or(OAuthError::InvalidClient)?;
                Ok(ClientCredentials::Post {
                    client_id: client_id.to_owned(),
                    secret: secret.to_owned(),
                })
            }
            (None, None) => {
                let client_id = self.get("client_id").ok_or(OAuthError::InvalidClient)?;
                Ok(ClientCredentials::IdOnly { client_id: client_id.to_owned() })
            }
        }
    }
}

/// RFC 6749 §2.3.1: `client_id` and secret are form-urlencoded, joined by `:`, base64.
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|value| value.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthErrorResponse;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(OAuthError::InvalidRequest(
                "send application/x-www-form-urlencoded".into(),
            )
            .into());
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::Bytes::from_request(request, state).await.map_err(|_| {
            OAuthError::InvalidRequest("the body could not be read or is too large".into())
        })?;
        let mut parameters = HashMap::new();
        let mut resources = Vec::new();
        for (name, value) in url::form_urlencoded::parse(&body) {
            if name == "resource" {
                resources.push(value.into_owned());
                continue;
            }
            if parameters.insert(name.into_owned(), value.into_owned()).is_some() {
                return Err(OAuthError::InvalidRequest(
                    "a parameter appears more than once".into(),
                )
                .into());
            }
        }
        Ok(OAuthForm { parameters, resources, authorization })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Ae+cret");
        assert_eq!(decode_basic(&encoded), Some(("my app".into(), "s:e cret".into())));
        assert_eq!(decode_basic("!!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(decode_basic(&no_colon), None);
    }
}
