//! The device flow's HTTP side: `POST /oauth2/device_authorization` for the device, and the
//! `/device` page where the signed-in person enters and confirms the user code.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_domain::oauth::OAuthError;
use gatehouse_domain::oauth::STANDARD_SCOPES;
use minijinja::context;
use serde::Deserialize;

use super::form::OAuthForm;
use super::response::{OAuthErrorResponse, no_store_json};
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::ratelimit::{Bucket, Verdict, insert_headers};
use crate::state::AppState;

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new().route("/oauth2/device_authorization", post(device_authorization))
}

pub(crate) fn page_routes() -> Router<AppState> {
    Router::new().route("/device", get(show).post(decide))
}

pub(crate) async fn device_authorization(
    State(state): State<AppState>,
    form: OAuthForm,
) -> Response {
    let result = async {
        let credentials = form.client_credentials()?;
        let client = state
            .clients
            .authenticate_client(&credentials)
            .await
            .map_err(OAuthErrorResponse::from)?;
        Ok::<_, OAuthErrorResponse>(
            state.device_flow.start_device_authorization(&client, form.get("scope")).await?,
        )
    }
    .await;
    match result {
        Ok(answer) => match serde_json::to_value(answer) {
            Ok(body) => no_store_json(body),
            Err(error) => {
                OAuthErrorResponse::from(OAuthError::ServerError(error.to_string())).into_response()
            }
        },
        Err(error) => error.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DeviceQuery {
    user_code: Option<String>,
}

/// Enter a code (or arrive with it from `verification_uri_complete`), then confirm. Signing in
/// comes first, through `/login`.
async fn show(
    State(state): State<AppState>,
    Client(context): Client,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let code = query.user_code.unwrap_or_default();
    if session.is_none() {
        let mut return_to = url::form_urlencoded::Serializer::new(String::from("/device?"));
        if !code.is_empty() {
            return_to.append_pair("user_code", &code);
        }
        let return_to = return_to.finish();
        let login = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .finish();
        return state.pages.redirect(&format!("/login?{login}"));
    }
    if code.trim().is_empty() {
        return state.pages.render_form(
            StatusCode::OK,
            page.locale,
            &page.csrf,
            "device.html",
            context! { step => "enter" },
        );
    }
    if let Some(refused) = spend_user_code_budget(&state, &context, page.locale, &page.csrf).await {
        return refused;
    }
    match state.device_flow.pending_device(&code).await {
        Ok(Some(pending)) => {
            let scopes: Vec<minijinja::Value> = pending
                .scopes
                .iter()
                .map(|scope| context! { name => scope, known => STANDARD_SCOPES.contains(&scope.as_str()) })
                .collect();
            state.pages.render_form(
                StatusCode::OK,
                page.locale,
                &page.csrf,
                "device.html",
                context! { step => "confirm", user_code => pending.user_code, client_name => pending.client_name, scopes => scopes },
            )
        }
        Ok(None) => state.pages.render_form(
            StatusCode::NOT_FOUND,
            page.locale,
            &page.csrf,
            "device.html",
            context! { step => "enter", invalid => true },
        ),
        Err(error) => state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    user_code: String,
    #[serde(default)]
    decision: String,
}

async fn decide(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<DecisionForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Fdevice");
    };
    if let Some(refused) = spend_user_code_budget(&state, &context, locale, &csrf).await {
        return refused;
    }
    let approve = match fields.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return state.pages.error_page(locale, ErrorPage::bad_request()),
    };
    match state.device_flow.decide_device(&fields.user_code, approve, &principal, &context).await {
        Ok(true) => state.pages.render_form(
            StatusCode::OK,
            locale,
            &csrf,
            "device.html",
            context! { step => if approve { "approved" } else { "denied" } },
        ),
        Ok(false) => state.pages.render_form(
            StatusCode::NOT_FOUND,
            locale,
            &csrf,
            "device.html",
            context! { step => "enter", invalid => true },
        ),
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

/// Every user code presented (looked up or decided) spends the per-IP device-verification
/// budget, so user codes cannot be guessed faster than it allows; a spent budget answers the
/// entry form again with 429, `Retry-After` and the `RateLimit-*` headers.
async fn spend_user_code_budget(
    state: &AppState,
    context: &gatehouse_domain::principal::RequestContext,
    locale: crate::locale::Locale,
    csrf: &crate::browser::csrf::Csrf,
) -> Option<Response> {
    let verdict =
        state.rate_limit_policy().spend(Bucket::DeviceVerification, context.ip.as_deref()).await;
    let Verdict::Refused { decision, retry_after_seconds } = verdict else { return None };
    let mut response = state.pages.render_form(
        StatusCode::TOO_MANY_REQUESTS,
        locale,
        csrf,
        "device.html",
        context! { step => "enter", rate_limited => true },
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    insert_headers(headers, &decision);
    response.extensions_mut().insert(ErrorForLog { code: "rate_limited", internal: None });
    Some(response)
}
