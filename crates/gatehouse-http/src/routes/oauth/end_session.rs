//! `/oauth2/end_session`: RP-initiated logout. With an `id_token_hint` issued in the browser's
//! current session, the browser is signed out at once; otherwise the person confirms first (a
//! link alone must not sign anyone out). Redirects only to a `post_logout_redirect_uri` registered for
//! the client, with `state`; anything else ends on Gatehouse's own "signed out" page.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_domain::oauth::logout::{LogoutRequest, VerifiedLogout};
use minijinja::context;
use serde::Deserialize;

use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::{BrowserSession, display_name, end_browser_session};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/end_session", get(start).post(confirmed))
}

#[derive(Debug, Default, Deserialize)]
struct LogoutParameters {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
}

impl LogoutParameters {
    fn request(&self) -> LogoutRequest {
        LogoutRequest {
            id_token_hint: self.id_token_hint.clone().filter(|hint| !hint.is_empty()),
            client_id: self.client_id.clone().filter(|id| !id.is_empty()),
            post_logout_redirect_uri: self
                .post_logout_redirect_uri
                .clone()
                .filter(|uri| !uri.is_empty()),
            state: self.state.clone(),
        }
    }
}

fn finish(
    state: &AppState,
    locale: Locale,
    verified: &VerifiedLogout,
    mut response: Response,
) -> Response {
    match &verified.redirect {
        Some(location) => {
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(value) = HeaderValue::from_str(location) {
                response.headers_mut().insert(LOCATION, value);
            }
            response
        }
        None => {
            let mut page = state.pages.render(locale, "signed_out.html", context! {});
            for cookie in response.headers().get_all(axum::http::header::SET_COOKIE) {
                page.headers_mut().append(axum::http::header::SET_COOKIE, cookie.clone());
            }
            page
        }
    }
}

fn invalid(state: &AppState, locale: Locale) -> Response {
    state.pages.render_status(
        StatusCode::BAD_REQUEST,
        locale,
        "oauth_error.html",
        context! { message => "The logout request is not valid (id_token_hint or client_id)." },
    )
}

async fn start(
    State(state): State<AppState>,
    page: PageRequest,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let Ok(parameters) =
        serde_urlencoded::from_str::<LogoutParameters>(raw.as_deref().unwrap_or(""))
    else {
        return invalid(&state, page.locale);
    };
    let locale =
        parameters.ui_locales.as_deref().and_then(Locale::from_ui_locales).unwrap_or(page.locale);
    let Ok(verified) = state.oauth.verify_logout(&parameters.request()).await else {
        return invalid(&state, locale);
    };
    match session {
        None => finish(&state, locale, &verified, StatusCode::OK.into_response()),
        Some(principal) if verified.is_for_browser_session(&principal) => {
            let mut response = StatusCode::OK.into_response();
            if let Err(error) =
                end_browser_session(&state, Some(&principal), &context, &mut response).await
            {
                return state.pages.error_page(locale, ErrorPage::from_domain(&error));
            }
            if let Err(error) =
                state.oauth.end_hinted_session(&verified, &principal.user.id, &context).await
            {
                return state.pages.error_page(locale, ErrorPage::from_domain(&error));
            }
            finish(&state, locale, &verified, response)
        }
        Some(principal) => {
            let name = display_name(&state, &principal);
            let context = context! {
                name => name,
                id_token_hint => parameters.id_token_hint.unwrap_or_default(),
                client_id => parameters.client_id.unwrap_or_default(),
                post_logout_redirect_uri => parameters.post_logout_redirect_uri.unwrap_or_default(),
                logout_state => parameters.state.unwrap_or_default(),
            };
            state.pages.render_form(StatusCode::OK, locale, &page.csrf, "end_session.html", context)
        }
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    id_token_hint: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    post_logout_redirect_uri: String,
    #[serde(default)]
    state: String,
}

async fn confirmed(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ConfirmForm>,
) -> Response {
    let PageForm { locale, fields, .. } = form;
    let parameters = LogoutParameters {
        id_token_hint: Some(fields.id_token_hint),
        client_id: Some(fields.client_id),
        post_logout_redirect_uri: Some(fields.post_logout_redirect_uri),
        state: Some(fields.state).filter(|value| !value.is_empty()),
        ui_locales: None,
    };
    let Ok(verified) = state.oauth.verify_logout(&parameters.request()).await else {
        return invalid(&state, locale);
    };
    let mut response = StatusCode::OK.into_response();
    if let Err(error) = end_browser_session(&state, session.as_ref(), &context, &mut response).await
    {
        return state.pages.error_page(locale, ErrorPage::from_domain(&error));
    }
    if let Some(principal) = &session
        && let Err(error) =
            state.oauth.end_hinted_session(&verified, &principal.user.id, &context).await
    {
        return state.pages.error_page(locale, ErrorPage::from_domain(&error));
    }
    finish(&state, locale, &verified, response)
}
