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

    /// Whether the upstream sends the browser back with a cross-site form POST
    /// (`response_mode=form_post`): Apple does when names or the address are asked for.
    pub fn posts_callback(self) -> bool {
        self == ProviderKind::Apple
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
    /// Apple: the sign-in key its client secret (a short ES256 JWT) is minted from, for each
    /// exchange; `client_secret` is then none.
    pub client_key: Option<ClientKey>,
    pub scopes: Vec<String>,
    /// Keeps the upstream's access and refresh tokens (sealed) for the server's applications
    /// to call the upstream's API on the user's behalf.
    pub keep_tokens: bool,
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

/// A signing key a provider authenticates clients by (Apple's sign-in key): its client secret
/// is a JWT signed with it — `iss` the team, `sub` the client id, `aud` the issuer, `kid` the
/// key id.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub team_id: String,
    pub key_id: String,
    /// PEM, unencrypted PKCS#8 (the `.p8` file), P-256.
    pub private_key: String,
}

impl fmt::Debug for ClientKey {
    /// Never prints the private key.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Whether `text` can be an Apple team or key id: 1 to 64 ASCII letters and digits.
fn valid_apple_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric())
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
    /// The secret; Apple: the sign-in key's PEM (`private_key`). Kept apart, sealed.
    #[serde(skip)]
    pub client_secret: Option<String>,
    /// Apple: the team and the sign-in key's id.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub keep_tokens: Option<bool>,
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
        let client_key = self.client_key(kind)?;
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
            client_secret: if client_key.is_some() { None } else { self.client_secret.clone() },
            client_key,
            keep_tokens: self.keep_tokens.unwrap_or(false),
            scopes,
            allow_sign_up: self.allow_sign_up.unwrap_or(true),
            trust_email_verified: self.trust_email_verified.unwrap_or(preset.trust_email_verified),
            trust_amr: self.trust_amr.unwrap_or(false),
            claims,
            from_file,
        })
    }
}

impl ProviderSettings {
    /// Apple's sign-in key (team id, key id, the PEM in `client_secret`), checked: it must be
    /// a P-256 key in PKCS#8 PEM. Other kinds have none and take no team or key id.
    fn client_key(&self, kind: ProviderKind) -> Result<Option<ClientKey>, FieldIssue> {
        if kind != ProviderKind::Apple {
            for (field, value) in [("team_id", &self.team_id), ("key_id", &self.key_id)] {
                if value.is_some() {
                    return Err(FieldIssue::new(field, "invalid", "only for the apple kind"));
                }
            }
            return Ok(None);
        }
        let id = |field: &str, value: &Option<String>| match value {
            Some(text) if valid_apple_id(text) => Ok(text.clone()),
            Some(_) => Err(FieldIssue::new(field, "invalid", "1 to 64 letters and digits")),
            None => Err(FieldIssue::new(field, "required", "required for Apple")),
        };
        let team_id = id("team_id", &self.team_id)?;
        let key_id = id("key_id", &self.key_id)?;
        let private_key = self.client_secret.clone().ok_or_else(|| {
            FieldIssue::new(
                "private_key",
                "required",
                "Apple needs its sign-in key (the .p8 file): private_key_file in the file, \
                 private_key through the admin API",
            )
        })?;
        gatehouse_crypto::SigningKey::from_pkcs8_pem(
            gatehouse_crypto::SigningAlgorithm::ES256,
            &private_key,
        )
        .map_err(|_| {
            FieldIssue::new(
                "private_key",
                "invalid",
                "not a P-256 key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----), as Apple's .p8 file is",
            )
        })?;
        Ok(Some(ClientKey { team_id, key_id, private_key }))
    }
}

#[cfg(test)]
mod tests {
    use super::{ProviderKind, ProviderSettings};

    fn apple(private_key: Option<String>) -> ProviderSettings {
        ProviderSettings {
            id: "apple".into(),
            kind: "apple".into(),
            client_id: "com.example.web".into(),
            client_secret: private_key,
            team_id: Some("TEAM123456".into()),
            key_id: Some("KEY7890ABC".into()),
            ..ProviderSettings::default()
        }
    }

    #[test]
    fn apples_preset_needs_its_sign_in_key_and_posts_back() {
        let key =
            gatehouse_crypto::SigningKey::generate(gatehouse_crypto::SigningAlgorithm::ES256, 0)
                .unwrap();
        let provider = apple(Some(key.pkcs8_pem().to_string())).build(true).unwrap();
        assert_eq!(provider.issuer.as_deref(), Some("https://appleid.apple.com"));
        assert_eq!(provider.scopes, ["openid", "email", "name"]);
        assert!(provider.trust_email_verified);
        assert!(provider.kind.posts_callback());
        assert_eq!(provider.client_secret, None, "the key is not a client secret");
        let client_key = provider.client_key.unwrap();
        assert_eq!(
            (client_key.team_id.as_str(), client_key.key_id.as_str()),
            ("TEAM123456", "KEY7890ABC")
        );
        assert!(!format!("{client_key:?}").contains("PRIVATE"), "Debug prints the key");

        assert_eq!(apple(None).build(true).unwrap_err().field, "private_key");
        assert_eq!(apple(Some("junk".into())).build(true).unwrap_err().field, "private_key");
        let mut no_team = apple(Some(key.pkcs8_pem().to_string()));
        no_team.team_id = None;
        assert_eq!(no_team.build(true).unwrap_err().field, "team_id");
        let mut google = apple(None);
        google.kind = "google".into();
        assert_eq!(google.build(true).unwrap_err().field, "team_id");
        google.team_id = None;
        google.key_id = None;
        let google = google.build(true).unwrap();
        assert!(google.client_key.is_none() && !google.kind.posts_callback());
        assert!(!google.keep_tokens, "tokens are kept only when asked");
        assert_eq!(ProviderKind::parse("apple"), Some(ProviderKind::Apple));
    }
}
