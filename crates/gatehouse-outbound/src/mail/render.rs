//! Rendering a message: the subject and words from the locale catalogues, laid out by the
//! `message.txt` / `message.html` templates (embedded), which a templates directory can
//! override, per message (`<kind>.html`) or for all (`message.html`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use gatehouse_domain::notify::EmailPayload;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

/// Product name, logo and colour, from the `[branding]` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailBranding {
    pub product_name: String,
    pub logo_url: Option<String>,
    /// `#rrggbb` (validated by the configuration).
    pub primary_color: String,
}

/// A rendered message.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

const ENGLISH: &str = include_str!("locales/en.toml");
const FRENCH: &str = include_str!("locales/fr.toml");
const EMBEDDED: [(&str, &str); 2] = [
    ("message.txt", include_str!("templates/message.txt")),
    ("message.html", include_str!("templates/message.html")),
];

/// The message kinds the catalogues describe.
pub const KINDS: [&str; 18] = [
    "verify_email",
    "reset_password",
    "magic_link",
    "password_changed",
    "new_sign_in",
    "mfa_changed",
    "mfa_code",
    "account_locked",
    "account_claimed",
    "account_exists",
    "passkey_changed",
    "passkey_flagged",
    "organization_invitation",
    "webhook_disabled",
    "change_email",
    "email_change_requested",
    "account_deleted",
    "account_deletion_scheduled",
];

pub struct Renderer {
    environment: Environment<'static>,
    english: BTreeMap<String, String>,
    french: BTreeMap<String, String>,
    branding: MailBranding,
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::String(text) => {
                out.insert(path, text.clone());
            }
            toml::Value::Table(inner) => flatten(&path, inner, out),
            _ => {}
        }
    }
}

fn catalogue(text: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table =
        text.parse().map_err(|error| format!("mail catalogue {name}: {error}"))?;
    let mut messages = BTreeMap::new();
    flatten("", &table, &mut messages);
    Ok(messages)
}

fn interpolate(message: &str, values: &BTreeMap<String, String>) -> String {
    values
        .iter()
        .fold(message.to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

impl Renderer {
    /// Parses the catalogues and templates. With `templates_dir`, a file there named like an
    /// embedded template (or `<kind>.txt`/`<kind>.html`) replaces it; read at each render, so
    /// an edit shows without a restart.
    pub fn new(branding: MailBranding, templates_dir: Option<PathBuf>) -> Result<Renderer, String> {
        if let Some(dir) = &templates_dir
            && !dir.is_dir()
        {
            return Err(format!("templates directory {} does not exist", dir.display()));
        }
        let mut environment = Environment::new();
        environment.set_auto_escape_callback(|name| {
            if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None }
        });
        environment.set_undefined_behavior(UndefinedBehavior::Chainable);
        environment.set_loader(move |name| {
            // Only plain file names: a template name never walks out of the directory.
            let plain = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !name.starts_with('.');
            if !plain {
                return Ok(None);
            }
            if let Some(dir) = &templates_dir {
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(source) => return Ok(Some(source)),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(minijinja::Error::new(
                            minijinja::ErrorKind::TemplateNotFound,
                            format!("cannot read template {name}: {error}"),
                        ));
                    }
                }
            }
            Ok(EMBEDDED
                .iter()
                .find(|(embedded, _)| *embedded == name)
                .map(|(_, s)| (*s).to_owned()))
        });
        let renderer = Renderer {
            environment,
            english: catalogue(ENGLISH, "en")?,
            french: catalogue(FRENCH, "fr")?,
            branding,
        };
        // Fail at start-up, not at the first message.
        for name in ["message.txt", "message.html"] {
            renderer
                .environment
                .get_template(name)
                .map_err(|error| format!("mail template {name}: {error}"))?;
        }
        Ok(renderer)
    }

    fn message(&self, locale: &str, key: &str) -> Result<&str, String> {
        let catalogue = if locale == "fr" { &self.french } else { &self.english };
        catalogue
            .get(key)
            .or_else(|| self.english.get(key))
            .map(String::as_str)
            .ok_or_else(|| format!("no mail message {key:?}"))
    }

    /// "15 minutes", "24 hours", in the message's language.
    fn validity(&self, locale: &str, minutes: &str) -> Result<String, String> {
        let Ok(count) = minutes.parse::<u64>() else { return Ok(String::new()) };
        let (key, count) = if count >= 120 && count % 60 == 0 {
            ("validity.hours", count / 60)
        } else {
            ("validity.minutes", count)
        };
        let values = BTreeMap::from([("count".to_owned(), count.to_string())]);
        Ok(interpolate(self.message(locale, key)?, &values))
    }

    /// Renders one message. An unknown kind is an error (permanent: it will never render).
    pub fn render(&self, payload: &EmailPayload) -> Result<Rendered, String> {
        let kind = payload.template.as_str();
        if !KINDS.contains(&kind) {
            return Err(format!("unknown message kind {kind:?}"));
        }
        let locale = if payload.locale == "fr" { "fr" } else { "en" };
        let mut values = payload.values.clone();
        values.insert("product".into(), self.branding.product_name.clone());
        if let Some(minutes) = payload.values.get("minutes") {
            values.insert("validity".into(), self.validity(locale, minutes)?);
        }
        let text = |key: &str| -> Result<String, String> {
            Ok(interpolate(self.message(locale, key)?, &values))
        };
        let name = values.get("name").filter(|name| !name.is_empty());
        let greeting = match name {
            Some(_) => text("common.greeting")?,
            None => text("common.greeting_anonymous")?,
        };
        let subject = text(&format!("{kind}.subject"))?;
        let context = context! {
            locale => locale,
            subject => subject.clone(),
            greeting => greeting,
            body => text(&format!("{kind}.body"))?,
            action => text(&format!("{kind}.action"))?,
            ignore => text(&format!("{kind}.ignore"))?,
            link => values.get("link").cloned(),
            link_hint => text("common.link_hint")?,
            signature => text("common.signature")?,
            automatic => text("common.automatic")?,
            values => Value::from(values.clone()),
            branding => context! {
                product_name => self.branding.product_name.clone(),
                logo_url => self.branding.logo_url.clone(),
                primary_color => self.branding.primary_color.clone(),
            },
        };
        let render = |extension: &str| -> Result<String, String> {
            let specific = format!("{kind}.{extension}");
            let template = match self.environment.get_template(&specific) {
                Ok(template) => template,
                Err(_) => self
                    .environment
                    .get_template(&format!("message.{extension}"))
                    .map_err(|error| error.to_string())?,
            };
            template.render(context.clone()).map_err(|error| format!("rendering {kind}: {error}"))
        };
        Ok(Rendered { subject, text: render("txt")?, html: render("html")? })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn branding() -> MailBranding {
        MailBranding {
            product_name: "Acme ID".into(),
            logo_url: None,
            primary_color: "#123456".into(),
        }
    }

    fn payload(kind: &str, locale: &str) -> EmailPayload {
        EmailPayload {
            to: "ada@example.com".into(),
            locale: locale.into(),
            template: kind.into(),
            values: BTreeMap::from([
                ("link".to_owned(), "https://id.example.com/x?token=a<b".to_owned()),
                ("minutes".to_owned(), "1440".to_owned()),
                ("name".to_owned(), "Ada".to_owned()),
                ("ip".to_owned(), "192.0.2.1".to_owned()),
                ("user_agent".to_owned(), "Firefox".to_owned()),
                ("change".to_owned(), "TOTP added".to_owned()),
            ]),
        }
    }

    #[test]
    fn catalogues_have_the_same_keys() {
        let english = catalogue(ENGLISH, "en").unwrap();
        let french = catalogue(FRENCH, "fr").unwrap();
        assert_eq!(english.keys().collect::<Vec<_>>(), french.keys().collect::<Vec<_>>());
        for kind in KINDS {
            for part in ["subject", "body", "action", "ignore"] {
                assert!(english.contains_key(&format!("{kind}.{part}")), "{kind}.{part}");
            }
        }
    }

    #[test]
    fn every_kind_renders_in_every_language_with_branding_and_escaping() {
        let renderer = Renderer::new(branding(), None).unwrap();
        for kind in KINDS {
            for locale in ["en", "fr"] {
                let rendered = renderer.render(&payload(kind, locale)).unwrap();
                assert!(rendered.subject.contains("Acme ID"), "{kind} {locale}");
                assert!(rendered.text.contains("Ada"), "{kind} {locale}");
                assert!(rendered.html.contains("#123456"), "{kind} {locale}");
                assert!(rendered.html.contains("a&lt;b"), "HTML escapes values: {kind}");
                assert!(rendered.text.contains("token=a<b"), "text does not escape: {kind}");
            }
        }
        let french = renderer.render(&payload("verify_email", "fr")).unwrap();
        assert!(french.subject.starts_with("Confirmez"), "{}", french.subject);
        assert!(french.text.contains("24 heures"), "{}", french.text);
        let english = renderer.render(&payload("verify_email", "de")).unwrap();
        assert!(english.text.contains("24 hours"), "{}", english.text);
    }

    #[test]
    fn a_templates_directory_overrides_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("magic_link.txt"),
            "Custom {{ link }} for {{ values.name }}\n",
        )
        .unwrap();
        let renderer = Renderer::new(branding(), Some(dir.path().to_path_buf())).unwrap();
        let magic = renderer.render(&payload("magic_link", "en")).unwrap();
        assert_eq!(magic.text.trim_end(), "Custom https://id.example.com/x?token=a<b for Ada");
        let other = renderer.render(&payload("reset_password", "en")).unwrap();
        assert!(other.text.starts_with("Hello Ada,"), "{}", other.text);
        assert!(renderer.render(&payload("../etc/passwd", "en")).is_err());
        assert!(Renderer::new(branding(), Some(dir.path().join("missing"))).is_err());
    }
}
