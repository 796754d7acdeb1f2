//! What a page handler receives: [`PageRequest`] on GET (the language and the CSRF state for
//! its forms), [`PageForm<T>`] on POST (the form, parsed only once its CSRF token checked
//! out; otherwise an error page) and [`PageJson<T>`] from the page script (the token in a
//! header; otherwise a 403 problem).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::locale::Locale;
use crate::state::AppState;

impl FromRequestParts<AppState> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(state.pages.csrf.for_request(&parts.headers))
    }
}

/// The language parameters a page accepts in its query or form.
#[derive(Debug, Default, Deserialize)]
struct LocaleParameters {
    lang: Option<String>,
    ui_locales: Option<String>,
}

fn locale_from_query(parts: &Parts) -> Option<Locale> {
    let query: LocaleParameters =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    query
        .lang
        .as_deref()
        .and_then(Locale::from_tag)
        .or_else(|| query.ui_locales.as_deref().and_then(Locale::from_ui_locales))
}

/// What every GET of a page needs: the language and the CSRF state for its forms.
pub struct PageRequest {
    pub locale: Locale,
    pub csrf: Csrf,
}

impl FromRequestParts<AppState> for PageRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let locale =
            locale_from_query(parts).unwrap_or_else(|| Locale::from_headers(&parts.headers));
        Ok(PageRequest { locale, csrf: state.pages.csrf.for_request(&parts.headers) })
    }
}

/// A POSTed page form (`application/x-www-form-urlencoded`) whose CSRF token checked out.
/// Rejections are pages: 403 for a missing or wrong token (nothing else happens), 400 for a
/// malformed body, 413/415 for an oversized or non-form body. `T` ignores `csrf_token`,
/// `lang` and `ui_locales` unless it wants them (don't use `deny_unknown_fields`).
pub struct PageForm<T> {
    pub locale: Locale,
    pub csrf: Csrf,
    pub fields: T,
}

#[derive(Deserialize)]
struct FormEnvelope {
    csrf_token: Option<String>,
    lang: Option<String>,
    ui_locales: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let pages = &state.pages;
        let fallback_locale =
            locale_from_query(&parts).unwrap_or_else(|| Locale::from_headers(&parts.headers));
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|value| {
                value.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(pages.error_page(
                fallback_locale,
                ErrorPage::bad_request().with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ));
        }
        let csrf = pages.csrf.for_request(&parts.headers);
        let request = Request::from_parts(parts, body);
        let bytes = match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => {
                let page = ErrorPage::bad_request().with_status(rejection.status());
                return Err(pages.error_page(fallback_locale, page));
            }
        };
        let envelope: FormEnvelope = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| pages.error_page(fallback_locale, ErrorPage::bad_request()))?;
        // The form's own choice (a hidden `lang` keeps the one the page was shown in) wins.
        let locale = envelope
            .lang
            .as_deref()
            .and_then(Locale::from_tag)
            .or_else(|| envelope.ui_locales.as_deref().and_then(Locale::from_ui_locales))
            .unwrap_or(fallback_locale);
        if !envelope.csrf_token.as_deref().is_some_and(|token| csrf.verify(token)) {
            return Err(pages.error_page(locale, ErrorPage::csrf()));
        }
        let fields: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| pages.error_page(locale, ErrorPage::bad_request()))?;
        Ok(PageForm { locale, csrf, fields })
    }
}

/// The header the page script sends its CSRF token in (the page carries the token).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body the page script POSTs (the passkey ceremonies), accepted only with the page's
/// CSRF token in [`CSRF_HEADER`], checked before the body is read. Rejections are
/// problem+json: 403 `csrf_failed`, then [`crate::extract::ApiJson`]'s.
pub struct PageJson<T> {
    pub body: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for PageJson<T> {
    type Rejection = crate::error::ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers();
        let csrf = state.pages.csrf.for_request(headers);
        let token = headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok());
        if !token.is_some_and(|token| csrf.verify(token)) {
            return Err(crate::error::ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "The page's CSRF token is missing or wrong: reload the page and try again.",
            ));
        }
        let crate::extract::ApiJson(body) =
            crate::extract::ApiJson::<T>::from_request(request, state).await?;
        Ok(PageJson { body })
    }
}
