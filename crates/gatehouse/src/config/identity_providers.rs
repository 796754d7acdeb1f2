//! `[[identity_providers]]`: upstream OpenID Connect and OAuth 2 providers (file only), checked
//! and turned into the domain's providers with their preset's defaults.

use std::collections::HashSet;
use std::path::PathBuf;

use gatehouse_domain::federation::{ClaimOverrides, IdentityProvider, ProviderSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

/// One `[[identity_providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderConfig {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    /// Apple: the team id, the sign-in key's id and its `.p8` file (the client secret is
    /// minted from the key for each exchange).
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// Keep the upstream's access and refresh tokens (sealed) for the server's applications.
    #[serde(default)]
    pub keep_tokens: bool,
    pub scopes: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub allow_sign_up: bool,
    pub trust_email_verified: Option<bool>,
    #[serde(default)]
    pub trust_amr: bool,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub emails_url: Option<String>,
    /// `oauth2`: where the user-info answer keeps each field.
    pub claims: Option<ClaimOverrides>,
}

fn yes() -> bool {
    true
}

fn error(index: usize, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("identity_providers[{index}].{key}"), message)
}

/// The configured providers, presets applied; refuses a bad id, kind, URL or secret.
pub fn identity_providers(
    entries: &[IdentityProviderConfig],
) -> Result<Vec<IdentityProvider>, ConfigError> {
    let mut seen = HashSet::new();
    let mut providers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let client_secret = match (&entry.client_secret, &entry.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(error(
                    index,
                    "client_secret",
                    "set client_secret or client_secret_file, not both",
                ));
            }
            (Some(secret), None) => Some(secret.expose_secret().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|read| {
                        error(index, "client_secret_file", format!("{}: {read}", path.display()))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let apple = entry.kind == "apple";
        if entry.private_key_file.is_some() && !apple {
            return Err(error(index, "private_key_file", "only for the apple kind"));
        }
        let client_secret = match (&entry.private_key_file, client_secret) {
            (_, Some(_)) if apple => {
                return Err(error(
                    index,
                    "client_secret",
                    "Apple's client secret is minted from private_key_file: set no client_secret",
                ));
            }
            // Only Apple takes a key file (checked above), and Apple takes no secret.
            (Some(path), _) => Some(std::fs::read_to_string(path).map_err(|read| {
                error(index, "private_key_file", format!("{}: {read}", path.display()))
            })?),
            (None, secret) => secret,
        };
        let settings = ProviderSettings {
            id: entry.id.clone(),
            kind: entry.kind.clone(),
            name: entry.name.clone(),
            issuer: entry.issuer.clone(),
            authorization_url: entry.authorization_url.clone(),
            token_url: entry.token_url.clone(),
            userinfo_url: entry.userinfo_url.clone(),
            emails_url: entry.emails_url.clone(),
            client_id: entry.client_id.clone(),
            client_secret,
            team_id: entry.team_id.clone(),
            key_id: entry.key_id.clone(),
            keep_tokens: Some(entry.keep_tokens),
            scopes: entry.scopes.clone(),
            allow_sign_up: Some(entry.allow_sign_up),
            trust_email_verified: entry.trust_email_verified,
            trust_amr: Some(entry.trust_amr),
            claims: entry.claims.clone(),
        };
        let provider = settings.build(true).map_err(|issue| {
            // The file names the key's file, not the key.
            let field =
                if issue.field == "private_key" { "private_key_file" } else { &issue.field };
            error(index, field, issue.message)
        })?;
        if !seen.insert(provider.id.clone()) {
            return Err(error(index, "id", format!("{:?} is used twice", provider.id)));
        }
        providers.push(provider);
    }
    Ok(providers)
}
