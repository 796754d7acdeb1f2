//! The hosted pages' words: the English and French message catalogues (`locales/*.toml`),
//! flattened to dotted keys, that the templates' `t("key")` function reads.

use std::collections::BTreeMap;

use crate::locale::Locale;

/// Every message of every locale, flattened to dotted keys (`login.title`).
#[derive(Debug)]
pub(crate) struct Catalogues {
    english: BTreeMap<String, String>,
    french: BTreeMap<String, String>,
}

const ENGLISH: &str = include_str!("locales/en.toml");
const FRENCH: &str = include_str!("locales/fr.toml");

impl Catalogues {
    /// Parses the embedded catalogues; fails at start-up, not on a page view.
    pub(crate) fn load() -> Result<Catalogues, String> {
        Ok(Catalogues { english: parse(ENGLISH, "en")?, french: parse(FRENCH, "fr")? })
    }

    fn of(&self, locale: Locale) -> &BTreeMap<String, String> {
        match locale {
            Locale::En => &self.english,
            Locale::Fr => &self.french,
        }
    }

    /// The message for `key`, in `locale` (falling back to English, then to `None`).
    pub(crate) fn message(&self, locale: Locale, key: &str) -> Option<&str> {
        self.of(locale).get(key).or_else(|| self.english.get(key)).map(String::as_str)
    }
}

fn parse(text: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table =
        text.parse().map_err(|error| format!("locale catalogue {name}: {error}"))?;
    let mut messages = BTreeMap::new();
    flatten("", &table, &mut messages).map_err(|key| {
        format!("locale catalogue {name}: {key} must be a string or a table of strings")
    })?;
    Ok(messages)
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    messages: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::String(text) => {
                messages.insert(path, text.clone());
            }
            toml::Value::Table(inner) => flatten(&path, inner, messages)?,
            _ => return Err(path),
        }
    }
    Ok(())
}

/// Replaces `{name}` placeholders with the given values (escaping happens later, on output).
pub(crate) fn interpolate(message: &str, values: &[(String, String)]) -> String {
    values
        .iter()
        .fold(message.to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_have_the_same_non_empty_keys() {
        let catalogues = Catalogues::load().unwrap();
        let english: Vec<&String> = catalogues.english.keys().collect();
        let french: Vec<&String> = catalogues.french.keys().collect();
        assert_eq!(english, french, "en.toml and fr.toml must define the same keys");
        assert!(english.len() > 10);
        for locale in Locale::ALL {
            for (key, message) in catalogues.of(locale) {
                assert!(!message.trim().is_empty(), "{}: {key} is empty", locale.code());
                assert!(
                    !message.contains('<'),
                    "{}: {key}: messages are text, not HTML",
                    locale.code()
                );
            }
        }
    }

    #[test]
    fn placeholders_are_replaced() {
        let values = vec![("product".to_owned(), "Acme".to_owned())];
        assert_eq!(interpolate("Sign out of {product}?", &values), "Sign out of Acme?");
        assert_eq!(interpolate("No placeholder", &values), "No placeholder");
    }
}
