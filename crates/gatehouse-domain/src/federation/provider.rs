//! Upstream identity providers as configured: their kind, endpoints, client credentials and
//! what Gatehouse trusts of them, with the presets' defaults filled in.

use std::fmt;

use crate::error::FieldIssue;

/// What an upstream speaks. The named kinds are presets over `oidc` or `oauth2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Oidc,
    OAuth2,
    Google,
    GitHub,
    Microsoft,
    Apple,
    LinkedIn,
}

impl ProviderKind {
    pub fn parse(text: &str) -> Option<ProviderKind> {
        Some(match text {
            "oidc" => ProviderKind::Oidc,
            "oauth2" => ProviderKind::OAuth2,
            "google" => ProviderKind::Google,
            "github" => ProviderKind::GitHub,
            "microsoft" => ProviderKind::Microsoft,
            "apple" => ProviderKind::Apple,
            "linkedin" => ProviderKind::LinkedIn,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::OAuth2 => "oauth2",
            ProviderKind::Google => "google",
            ProviderKind::GitHub => "github",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Apple => "apple",
            ProviderKind::LinkedIn => "linkedin",
        }
    }

    /// Whether it signs people in with OpenID Connect (an ID token checked through the
    /// upstream's JWKS); the others are plain OAuth 2 with a user-info API.
    pub fn speaks_oidc(self) -> bool {
        !matches!(self, ProviderKind::OAuth2 | ProviderKind::GitHub)
    }
}

/// Where a plain OAuth 2 upstream's user-info answer keeps each field (top-level JSON keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    pub subject: String,
    pub email: String,
    pub email_verified: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".into(),
            email: "email".into(),
            email_verified: Some("email_verified".into()),
            given_name: Some("given_name".into()),
            family_name: Some("family_name".into()),
            picture: Some("picture".into()),
        }
    }
}

/// One upstream provider, presets applied.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// URL-safe; in `/sso/{id}` and the callback path.
    pub id: String,
    pub kind: ProviderKind,
    /// Shown on the button.
    pub name: String,
    /// OpenID kinds: the issuer whose discovery document gives the endpoints.
    pub issuer: Option<String>,
    /// OAuth 2 kinds (and overrides of a preset's).
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// GitHub: the emails API, for the verified primary address.
    pub emails_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// An unknown identity creates an account (when sign-up is on).
    pub allow_sign_up: bool,
    /// An upstream's "email verified" links the identity to the account with that address.
    pub trust_email_verified: bool,
    /// An upstream `amr` naming a second factor satisfies this server's second step.
    pub trust_amr: bool,
    pub claims: ClaimMapping,
    /// From the configuration file (read-only through the admin API).
    pub from_file: bool,
}

impl fmt::Debug for IdentityProvider {
    /// Never prints the client secret.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("IdentityProvider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The defaults a preset fills in where the configuration says nothing.
pub struct Preset {
    pub issuer: Option<&'static str>,
    pub authorization_url: Option<&'static str>,
    pub token_url: Option<&'static str>,
    pub userinfo_url: Option<&'static str>,
    pub emails_url: Option<&'static str>,
    pub scopes: &'static [&'static str],
    pub trust_email_verified: bool,
}

impl ProviderKind {
    pub fn preset(self) -> Preset {
        let none = Preset {
            issuer: None,
            authorization_url: None,
            token_url: None,
            userinfo_url: None,
            emails_url: None,
            scopes: &["openid", "email", "profile"],
            trust_email_verified: false,
        };
        match self {
            ProviderKind::Oidc => none,
            ProviderKind::OAuth2 => Preset { scopes: &[], ..none },
            ProviderKind::Google => Preset {
                issuer: Some("https://accounts.google.com"),
                trust_email_verified: true,
                ..none
            },
            ProviderKind::Microsoft => Preset {
                issuer: Some("https://login.microsoftonline.com/common/v2.0"),
                trust_email_verified: true,
                ..none
            },
            ProviderKind::Apple => Preset {
                issuer: Some("https://appleid.apple.com"),
                scopes: &["openid", "email", "name"],
                trust_email_verified: true,
                ..none
            },
            ProviderKind::LinkedIn => {
                Preset { issuer: Some("https://www.linkedin.com/oauth"), ..none }
            }
            // Only the primary address GitHub itself verified is read (the emails API), so it is
            // trusted as Clerk and Auth0 do.
            ProviderKind::GitHub => Preset {
                authorization_url: Some("https://github.com/login/oauth/authorize"),
                token_url: Some("https://github.com/login/oauth/access_token"),
                userinfo_url: Some("https://api.github.com/user"),
                emails_url: Some("https://api.github.com/user/emails"),
                scopes: &["read:user", "user:email"],
                trust_email_verified: true,
                ..none
            },
        }
    }
}

/// What login buttons need (`GET /v1/auth/providers`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderSummary {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
}

/// Where a plain OAuth 2 upstream's user-info answer keeps each field, as set (unset: the
/// default mapping's).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimOverrides {
    pub subject: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
}

/// A provider as configured (the file's `[[identity_providers]]` entry, or an admin's
/// request), before the preset fills the gaps. Stored as JSON for admin-added providers, the
/// secret apart (sealed).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderSettings {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub emails_url: Option<String>,
    pub client_id: String,
    #[serde(skip)]
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub allow_sign_up: Option<bool>,
    pub trust_email_verified: Option<bool>,
    pub trust_amr: Option<bool>,
    pub claims: Option<ClaimOverrides>,
}

impl fmt::Debug for ProviderSettings {
    /// Never prints the client secret.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ProviderSettings")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Whether `id` can name a provider: 1 to 64 of `a-z`, `0-9`, `-`, `_` (it is a URL segment).
pub fn valid_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_url(field: &str, value: &Option<String>) -> Result<(), FieldIssue> {
    if let Some(text) = value {
        let url = url::Url::parse(text)
            .map_err(|_| FieldIssue::new(field, "invalid", "not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(FieldIssue::new(field, "invalid", "must be an http:// or https:// URL"));
        }
    }
    Ok(())
}

impl ProviderSettings {
    /// The provider with its preset's defaults, or the first field at fault.
    pub fn build(&self, from_file: bool) -> Result<IdentityProvider, FieldIssue> {
        if !valid_provider_id(&self.id) {
            return Err(FieldIssue::new("id", "invalid", "1 to 64 of a-z, 0-9, '-' and '_'"));
        }
        let kind = ProviderKind::parse(&self.kind).ok_or_else(|| {
            FieldIssue::new(
                "kind",
                "invalid",
                "one of oidc, oauth2, google, github, microsoft, apple, linkedin",
            )
        })?;
        if kind == ProviderKind::Apple {
            return Err(FieldIssue::new(
                "kind",
                "unsupported",
                format!("the {} preset is not available yet", kind.as_str()),
            ));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 512 {
            return Err(FieldIssue::new("client_id", "invalid", "1 to 512 characters"));
        }
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.chars().count() > 100)
        {
            return Err(FieldIssue::new("name", "invalid", "1 to 100 characters"));
        }
        for (field, value) in [
            ("issuer", &self.issuer),
            ("authorization_url", &self.authorization_url),
            ("token_url", &self.token_url),
            ("userinfo_url", &self.userinfo_url),
            ("emails_url", &self.emails_url),
        ] {
            check_url(field, value)?;
        }
        let preset = kind.preset();
        let or_preset = |value: &Option<String>, default: Option<&str>| {
            value.clone().or_else(|| default.map(str::to_owned))
        };
        let issuer = or_preset(&self.issuer, preset.issuer);
        if kind.speaks_oidc() && issuer.is_none() {
            return Err(FieldIssue::new(
                "issuer",
                "required",
                "required for an OpenID Connect provider",
            ));
        }
        let authorization_url = or_preset(&self.authorization_url, preset.authorization_url);
        let token_url = or_preset(&self.token_url, preset.token_url);
        let userinfo_url = or_preset(&self.userinfo_url, preset.userinfo_url);
        if !kind.speaks_oidc() {
            for (field, value) in [
                ("authorization_url", &authorization_url),
                ("token_url", &token_url),
                ("userinfo_url", &userinfo_url),
            ] {
                if value.is_none() {
                    return Err(FieldIssue::new(
                        field,
                        "required",
                        "required for an OAuth 2 provider",
                    ));
                }
            }
        }
        let scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| preset.scopes.iter().map(|scope| (*scope).to_owned()).collect());
        if scopes.len() > 50
            || scopes
                .iter()
                .any(|scope| scope.is_empty() || scope.len() > 200 || scope.contains(' '))
        {
            return Err(FieldIssue::new("scopes", "invalid", "up to 50 scopes, no spaces"));
        }
        let mut claims = ClaimMapping::default();
        if kind == ProviderKind::GitHub {
            claims.subject = "id".into();
            claims.given_name = Some("name".into());
            claims.family_name = None;
            claims.email_verified = None;
        }
        if let Some(mapping) = &self.claims {
            if let Some(subject) = &mapping.subject {
                claims.subject.clone_from(subject);
            }
            if let Some(email) = &mapping.email {
                claims.email.clone_from(email);
            }
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
        Ok(IdentityProvider {
            id: self.id.clone(),
            kind,
            name: self.name.clone().unwrap_or_else(|| self.id.clone()),
            issuer,
            authorization_url,
            token_url,
            userinfo_url,
            emails_url: or_preset(&self.emails_url, preset.emails_url),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scopes,
            allow_sign_up: self.allow_sign_up.unwrap_or(true),
            trust_email_verified: self.trust_email_verified.unwrap_or(preset.trust_email_verified),
            trust_amr: self.trust_amr.unwrap_or(false),
            claims,
            from_file,
        })
    }
}
