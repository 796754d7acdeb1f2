//! Upstream identity providers as configured: their kind, endpoints, client credentials and
//! what Gatehouse trusts of them, with the presets' defaults filled in.

use std::fmt;

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
            ProviderKind::GitHub => Preset {
                authorization_url: Some("https://github.com/login/oauth/authorize"),
                token_url: Some("https://github.com/login/oauth/access_token"),
                userinfo_url: Some("https://api.github.com/user"),
                emails_url: Some("https://api.github.com/user/emails"),
                scopes: &["read:user", "user:email"],
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
