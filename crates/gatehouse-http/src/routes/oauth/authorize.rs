//! `/oauth2/authorize` and the `/consent` form: the browser side of the authorization code
//! flow. Sign-in goes through `/login` (and comes back here), consent through `/consent`.
//! Nothing is ever sent to a client or redirect URI that failed verification.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_domain::oauth::STANDARD_SCOPES;
use gatehouse_domain::oauth::authorize::{
    AuthorizationRequest, AuthorizeRejection, AuthorizeStep, OrganizationSelection,
    ValidatedAuthorization,
};
use gatehouse_domain::oauth::par::PushedHandle;
use gatehouse_domain::principal::Principal;
use gatehouse_domain::tokens::OrganizationChoice;
use minijinja::context;
use serde::Deserialize;

use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::{BrowserSession, display_name};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/authorize", get(authorize)).route("/consent", post(consent))
}

#[derive(Debug, Default, Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
    response_mode: Option<String>,
    organization: Option<String>,
    dpop_jkt: Option<String>,
}

/// Parses the query; a parameter given twice makes the request invalid (RFC 6749 §3.1).
fn parse_request(raw: &str) -> Option<AuthorizationRequest> {
    let mut seen = std::collections::HashSet::new();
    let mut resource = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        // `resource` may repeat (RFC 8707 §2).
        if name == "resource" {
            resource.push(value.into_owned());
        } else if !seen.insert(name.into_owned()) {
            return None;
        }
    }
    let query: AuthorizeQuery = serde_urlencoded::from_str(raw).ok()?;
    Some(AuthorizationRequest {
        client_id: query.client_id,
        redirect_uri: query.redirect_uri,
        response_type: query.response_type,
        scope: query.scope,
        state: query.state,
        nonce: query.nonce,
        code_challenge: query.code_challenge,
        code_challenge_method: query.code_challenge_method,
        prompt: query.prompt,
        max_age: query.max_age,
        login_hint: query.login_hint,
        ui_locales: query.ui_locales,
        request: query.request,
        request_uri: query.request_uri,
        response_mode: query.response_mode,
        organization: query.organization,
        dpop_jkt: query.dpop_jkt,
        resource,
        pushed: false,
    })
}

/// The request to work on: the query's, or the pushed request its `request_uri` names
/// (RFC 9126), with the handle to spend when the authorization ends.
async fn resolve(
    state: &AppState,
    locale: Locale,
    request: AuthorizationRequest,
) -> Result<(AuthorizationRequest, Option<PushedHandle>), Response> {
    match state.par.authorization_request(request).await {
        Ok(resolved) => Ok(resolved),
        Err(AuthorizeRejection::Page(message)) => Err(error_page(state, locale, &message)),
        Err(AuthorizeRejection::Redirect(location)) => Err(redirect_to_client(&location)),
    }
}

/// The authorization ends with an answer to the client: its pushed request, if any, is spent
/// first, so a `request_uri` never starts a second authorization (two tabs racing: the second
/// gets an error page, not a code).
async fn spend(
    state: &AppState,
    locale: Locale,
    pushed: Option<&PushedHandle>,
) -> Result<(), Response> {
    let Some(handle) = pushed else { return Ok(()) };
    match state.par.spend(handle).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(error_page(
            state,
            locale,
            "The request_uri is unknown, expired, already used or not this application's.",
        )),
        Err(error) => {
            tracing::error!(%error, "could not spend a pushed authorization request");
            Err(state.pages.error_page(locale, ErrorPage::from_domain(&error)))
        }
    }
}

/// A redirect to a verified client redirect URI (not a same-origin path).
fn redirect_to_client(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_page(state: &AppState, locale: Locale, message: &str) -> Response {
    state.pages.render_status(
        StatusCode::BAD_REQUEST,
        locale,
        "oauth_error.html",
        context! { message => message },
    )
}

/// The same request without `prompt` and `max_age`, to come back to after a fresh sign-in
/// (keeping them would ask for a sign-in again, forever).
fn without_login_triggers(raw: &str) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(name, _)| name != "prompt" && name != "max_age")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish()
}

fn login_redirect(
    state: &AppState,
    raw: &str,
    fresh: bool,
    request: &ValidatedAuthorization,
) -> Response {
    let return_to = format!("/oauth2/authorize?{}", without_login_triggers(raw));
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    serializer.append_pair("return_to", &return_to);
    if fresh {
        serializer.append_pair("prompt", "login");
    }
    if let Some(hint) = &request.login_hint {
        serializer.append_pair("login_hint", hint);
    }
    state.pages.redirect(&format!("/login?{}", serializer.finish()))
}

async fn authorize(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let Some(request) = parse_request(&raw) else {
        return error_page(&state, page.locale, "The authorization request is malformed.");
    };
    let (request, pushed) = match resolve(&state, page.locale, request).await {
        Ok(resolved) => resolved,
        Err(response) => return response,
    };
    let locale =
        request.ui_locales.as_deref().and_then(Locale::from_ui_locales).unwrap_or(page.locale);
    let validated = match state.oauth.validate_authorization(&request).await {
        Ok(validated) => validated,
        Err(AuthorizeRejection::Page(message)) => return error_page(&state, locale, &message),
        Err(AuthorizeRejection::Redirect(location)) => {
            if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                return response;
            }
            return redirect_to_client(&location);
        }
    };
    match state.oauth.authorization_step(&validated, session).await {
        Ok(AuthorizeStep::SignIn { fresh }) => {
            if let (true, Some(handle)) = (fresh, &pushed) {
                // The pushed request comes back without prompt=login and max_age, as the
                // query does (see `without_login_triggers`).
                if let Err(error) = state.par.signed_in_afresh(handle, &request).await {
                    tracing::error!(%error, "could not update a pushed authorization request");
                    return state.pages.error_page(locale, ErrorPage::from_domain(&error));
                }
            }
            login_redirect(&state, &raw, fresh, &validated)
        }
        Ok(AuthorizeStep::Consent(principal, organization)) => {
            consent_page(&state, locale, &page.csrf, &raw, &validated, &principal, &organization)
        }
        Ok(AuthorizeStep::IssueCode(principal, organization)) => {
            if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                return response;
            }
            issue(&state, locale, &validated, &principal, organization.as_deref()).await
        }
        Ok(AuthorizeStep::ChooseOrganization(principal, choices)) => {
            chooser_page(&state, locale, &raw, &validated, &principal, &choices)
        }
        Ok(AuthorizeStep::Refuse { location, .. }) => {
            if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                return response;
            }
            redirect_to_client(&location)
        }
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

async fn issue(
    state: &AppState,
    locale: Locale,
    request: &ValidatedAuthorization,
    principal: &Principal,
    organization_id: Option<&str>,
) -> Response {
    match state.oauth.issue_code(request, principal, organization_id).await {
        Ok(location) => redirect_to_client(&location),
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

/// The organizations as the pages list them.
fn choice_values(choices: &[OrganizationChoice]) -> Vec<minijinja::Value> {
    choices
        .iter()
        .map(|choice| context! { id => &choice.id, slug => &choice.slug, name => &choice.name })
        .collect()
}

/// For a client that skips consent, asking for the `organization` scope of a user in several:
/// pick one. The form goes back to `/oauth2/authorize` (GET) with the request unchanged but for
/// `organization`, so every rule is applied again to the answer.
fn chooser_page(
    state: &AppState,
    locale: Locale,
    raw: &str,
    request: &ValidatedAuthorization,
    principal: &Principal,
    choices: &[OrganizationChoice],
) -> Response {
    let parameters: Vec<minijinja::Value> = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(name, _)| name != "organization" && name != "prompt")
        .map(|(name, value)| context! { name => name.into_owned(), value => value.into_owned() })
        .collect();
    let context = context! {
        client_name => request.client.name.clone(),
        parameters => parameters,
        organizations => choice_values(choices),
        user_name => display_name(state, principal),
    };
    state.pages.render(locale, "choose_organization.html", context)
}

fn consent_page(
    state: &AppState,
    locale: Locale,
    csrf: &Csrf,
    raw: &str,
    request: &ValidatedAuthorization,
    principal: &Principal,
    organization: &OrganizationSelection,
) -> Response {
    let scopes: Vec<minijinja::Value> = request
        .scopes
        .iter()
        .map(|scope| context! { name => scope, known => STANDARD_SCOPES.contains(&scope.as_str()) })
        .collect();
    // `prompt=consent` has been answered by showing this page; coming back must not ask again.
    let returned: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(name, _)| name != "prompt")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let returned =
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(returned).finish();
    let (chosen, choices) = match organization {
        OrganizationSelection::Nothing => (None, Vec::new()),
        OrganizationSelection::Chosen(choice) => {
            (Some(context! { id => &choice.id, name => &choice.name }), Vec::new())
        }
        OrganizationSelection::Choose(choices) => (None, choice_values(choices)),
    };
    let context = context! {
        client_name => request.client.name.clone(),
        scopes => scopes,
        request => returned,
        user_name => display_name(state, principal),
        organization => chosen,
        organizations => choices,
    };
    state.pages.render_form(StatusCode::OK, locale, csrf, "consent.html", context)
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
    /// The organization picked on the page (`organization` scope).
    #[serde(default)]
    organization: Option<String>,
}

/// The consent form's answer: re-validates the request (the form is not trusted), then
/// remembers the consent and issues the code, or reports `access_denied` to the client.
async fn consent(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ConsentForm>,
) -> Response {
    let PageForm { locale, fields, csrf } = form;
    let Some(request) = parse_request(&fields.request) else {
        return error_page(&state, locale, "The authorization request is malformed.");
    };
    let (request, pushed) = match resolve(&state, locale, request).await {
        Ok(resolved) => resolved,
        Err(response) => return response,
    };
    let validated = match state.oauth.validate_authorization(&request).await {
        Ok(validated) => validated,
        Err(AuthorizeRejection::Page(message)) => return error_page(&state, locale, &message),
        Err(AuthorizeRejection::Redirect(location)) => {
            if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                return response;
            }
            return redirect_to_client(&location);
        }
    };
    let Some(principal) = session else {
        return state.pages.redirect(&format!("/oauth2/authorize?{}", fields.request));
    };
    match fields.decision.as_str() {
        "allow" => {
            // The pick is checked against the user's organizations like a client's request.
            let picked = fields.organization.as_deref().filter(|id| !id.is_empty());
            let organization =
                match state.oauth.select_organization(&validated, &principal.user.id, picked).await
                {
                    Ok(OrganizationSelection::Choose(choices)) => {
                        // No valid pick: ask again.
                        let selection = OrganizationSelection::Choose(choices);
                        return consent_page(
                            &state,
                            locale,
                            &csrf,
                            &fields.request,
                            &validated,
                            &principal,
                            &selection,
                        );
                    }
                    Ok(selection) => selection.chosen_id().map(str::to_owned),
                    Err(error) => {
                        return state.pages.error_page(locale, ErrorPage::from_domain(&error));
                    }
                };
            match state.oauth.grant_consent(&validated, &principal.user.id, &context).await {
                Ok(()) => {
                    if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                        return response;
                    }
                    issue(&state, locale, &validated, &principal, organization.as_deref()).await
                }
                Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
            }
        }
        "deny" => {
            if let Err(response) = spend(&state, locale, pushed.as_ref()).await {
                return response;
            }
            redirect_to_client(&state.oauth.error_redirect(
                &validated.redirect_uri,
                "access_denied",
                "the user denied the request",
                validated.state.as_deref(),
            ))
        }
        _ => state.pages.error_page(locale, ErrorPage::bad_request()),
    }
}
