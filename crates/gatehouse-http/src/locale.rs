//! Which language a request asks for: [`Locale`] from `lang`, `ui_locales` or
//! `Accept-Language` (with q-values). The hosted pages render in it and the API passes it on
//! (`RequestContext::locale`) for the messages sent on the caller's behalf.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_LANGUAGE;

/// A language the hosted pages are written in. English is the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    Fr,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Fr];

    /// The BCP 47 primary tag, as used in `<html lang>` and the `lang` parameter.
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
        }
    }

    /// The locale of a language tag (`fr`, `fr-CA`, `FR_fr`), by its primary subtag.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Locale::ALL.into_iter().find(|locale| primary.eq_ignore_ascii_case(locale.code()))
    }

    /// The first supported tag of an OpenID Connect `ui_locales` list (space-separated, in
    /// order of preference).
    pub fn from_ui_locales(list: &str) -> Option<Locale> {
        list.split_whitespace().find_map(Locale::from_tag)
    }

    /// The supported language the browser prefers most, honouring q-values (RFC 9110 §12.5.4);
    /// `q=0` means "not this one". Among equal weights, the header's order decides.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut ranked: Vec<(u16, Locale)> = header
            .split(',')
            .take(32)
            .filter_map(|item| {
                let mut pieces = item.split(';');
                let locale = Locale::from_tag(pieces.next()?)?;
                let weight = pieces
                    .find_map(|param| param.trim().strip_prefix("q="))
                    .map_or(Some(1000), parse_quality)?;
                (weight > 0).then_some((weight, locale))
            })
            .collect();
        // A stable sort keeps the header's order among equal weights.
        ranked.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
        ranked.first().map(|(_, locale)| *locale)
    }

    /// The language a request's `Accept-Language` header prefers, else English.
    pub fn from_headers(headers: &HeaderMap) -> Locale {
        Locale::negotiate(None, None, accept_language(headers))
    }

    /// The page's language: an explicit `lang`, else the first supported `ui_locales` entry,
    /// else `Accept-Language`, else English.
    pub fn negotiate(
        lang: Option<&str>,
        ui_locales: Option<&str>,
        accept_language: Option<&str>,
    ) -> Locale {
        lang.and_then(Locale::from_tag)
            .or_else(|| ui_locales.and_then(Locale::from_ui_locales))
            .or_else(|| accept_language.and_then(Locale::from_accept_language))
            .unwrap_or_default()
    }
}

/// A q-value as thousandths (`0.8` → 800); `None` when malformed, so the entry is skipped.
fn parse_quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    if !(0.0..=1.0).contains(&value) {
        return None;
    }
    // In range 0..=1000 by the check above, so the cast cannot truncate.
    Some((value * 1000.0).round() as u16)
}

/// The `Accept-Language` header, if readable.
pub fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers.get(ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(lang: Option<&str>, ui: Option<&str>, accept: Option<&str>, expected: Locale) {
        assert_eq!(
            Locale::negotiate(lang, ui, accept),
            expected,
            "lang {lang:?}, ui_locales {ui:?}, accept-language {accept:?}"
        );
    }

    #[test]
    fn negotiation_prefers_lang_then_ui_locales_then_accept_language() {
        check(None, None, None, Locale::En);
        check(Some("fr"), None, Some("en"), Locale::Fr);
        check(Some("FR-ca"), None, None, Locale::Fr);
        check(Some("de"), Some("fr"), None, Locale::Fr);
        check(Some("de"), None, None, Locale::En);
        check(None, Some("de-DE fr-FR en"), Some("en"), Locale::Fr);
        check(None, Some("ja"), Some("fr"), Locale::Fr);
        check(None, None, Some("fr-FR,fr;q=0.9"), Locale::Fr);
        check(None, None, Some("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"), Locale::Fr);
        check(None, None, Some("en;q=0.5, fr;q=0.8"), Locale::Fr);
        check(None, None, Some("de, fr;q=0.2, en;q=0.3"), Locale::En);
        check(None, None, Some("fr;q=0, en;q=0.1"), Locale::En);
        check(None, None, Some("fr;q=0"), Locale::En);
        check(None, None, Some("*"), Locale::En);
        check(None, None, Some("fr;q=abc, en;q=0.1"), Locale::En);
        check(None, None, Some("fr;q=2"), Locale::En);
        check(None, None, Some("fr , en"), Locale::Fr);
        check(None, None, Some(";;;,,,=q"), Locale::En);
    }
}
