//! `[[identity_providers]]`: upstream OpenID Connect and OAuth 2 providers (file only), checked
//! and turned into the domain's providers with their preset's defaults.

use std::collections::HashSet;
use std::path::PathBuf;

use gatehouse_domain::federation::{ClaimMapping, IdentityProvider, ProviderKind};
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
    pub claims: Option<ClaimMappingConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMappingConfig {
    pub subject: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
}

fn yes() -> bool {
    true
}

fn error(index: usize, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("identity_providers[{index}].{key}"), message)
}

fn check_url(index: usize, key: &str, value: &Option<String>) -> Result<(), ConfigError> {
    if let Some(text) = value {
        let url = url::Url::parse(text)
            .map_err(|parse| error(index, key, format!("not a URL: {parse}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(error(index, key, "must be an http:// or https:// URL"));
        }
    }
    Ok(())
}

/// The configured providers, presets applied; refuses a bad id, kind, URL or secret.
pub fn identity_providers(
    entries: &[IdentityProviderConfig],
) -> Result<Vec<IdentityProvider>, ConfigError> {
    let mut seen = HashSet::new();
    let mut providers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let valid_id = !entry.id.is_empty()
            && entry.id.len() <= 64
            && entry
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_id {
            return Err(error(index, "id", "1 to 64 of a-z, 0-9, '-' and '_'"));
        }
        if !seen.insert(entry.id.clone()) {
            return Err(error(index, "id", format!("{:?} is used twice", entry.id)));
        }
        let kind = ProviderKind::parse(&entry.kind).ok_or_else(|| {
            error(index, "kind", "one of oidc, oauth2, google, github, microsoft, apple, linkedin")
        })?;
        if matches!(kind, ProviderKind::Microsoft | ProviderKind::Apple | ProviderKind::LinkedIn) {
            return Err(error(
                index,
                "kind",
                format!("the {} preset is not available yet", kind.as_str()),
            ));
        }
        if entry.client_id.is_empty() {
            return Err(error(index, "client_id", "must not be empty"));
        }
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
        for (key, value) in [
            ("issuer", &entry.issuer),
            ("authorization_url", &entry.authorization_url),
            ("token_url", &entry.token_url),
            ("userinfo_url", &entry.userinfo_url),
            ("emails_url", &entry.emails_url),
        ] {
            check_url(index, key, value)?;
        }
        let preset = kind.preset();
        let or_preset = |value: &Option<String>, default: Option<&str>| {
            value.clone().or_else(|| default.map(str::to_owned))
        };
        let issuer = or_preset(&entry.issuer, preset.issuer);
        if kind.speaks_oidc() && issuer.is_none() {
            return Err(error(index, "issuer", "required for an OpenID Connect provider"));
        }
        let authorization_url = or_preset(&entry.authorization_url, preset.authorization_url);
        let token_url = or_preset(&entry.token_url, preset.token_url);
        let userinfo_url = or_preset(&entry.userinfo_url, preset.userinfo_url);
        if !kind.speaks_oidc() {
            for (key, value) in [
                ("authorization_url", &authorization_url),
                ("token_url", &token_url),
                ("userinfo_url", &userinfo_url),
            ] {
                if value.is_none() {
                    return Err(error(index, key, "required for an OAuth 2 provider"));
                }
            }
        }
        let mut claims = ClaimMapping::default();
        if let Some(mapping) = &entry.claims {
            let set = |target: &mut String, value: &Option<String>| {
                if let Some(value) = value {
                    *target = value.clone();
                }
            };
            set(&mut claims.subject, &mapping.subject);
            set(&mut claims.email, &mapping.email);
            for (target, value) in [
                (&mut claims.email_verified, &mapping.email_verified),
                (&mut claims.given_name, &mapping.given_name),
                (&mut claims.family_name, &mapping.family_name),
                (&mut claims.picture, &mapping.picture),
            ] {
                if value.is_some() {
                    target.clone_from(value);
                }
            }
        }
        if kind == ProviderKind::GitHub {
            claims.subject = "id".into();
            claims.given_name = Some("name".into());
            claims.family_name = None;
            claims.email_verified = None;
        }
        providers.push(IdentityProvider {
            id: entry.id.clone(),
            kind,
            name: entry.name.clone().unwrap_or_else(|| entry.id.clone()),
            issuer,
            authorization_url,
            token_url,
            userinfo_url,
            emails_url: or_preset(&entry.emails_url, preset.emails_url),
            client_id: entry.client_id.clone(),
            client_secret,
            scopes: entry
                .scopes
                .clone()
                .unwrap_or_else(|| preset.scopes.iter().map(|scope| (*scope).to_owned()).collect()),
            allow_sign_up: entry.allow_sign_up,
            trust_email_verified: entry.trust_email_verified.unwrap_or(preset.trust_email_verified),
            trust_amr: entry.trust_amr,
            claims,
            from_file: true,
        });
    }
    Ok(providers)
}
