//! `/admin/verify`: the dashboard's step-up. An admin with a second factor proves it before
//! the dashboard opens (and again when a destructive action finds the last authentication too
//! old); one without proves the password. It is the API's re-authentication
//! (`MfaService::reauthenticate`): it feeds the lockout, records `user.reauthenticated` and
//! renews the session's `auth_time` and `amr`. Codes by email or SMS are sent on request.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::mfa::Reauthentication;
use gatehouse_domain::principal::Principal;
use minijinja::context;
use serde::Deserialize;

use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::browser::return_to::safe_return_to;
use crate::client::Client;
use crate::locale::Locale;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

#[derive(Deserialize, Default)]
struct VerifyQuery {
    return_to: Option<String>,
}

/// Where to go once verified: a dashboard path, else the overview.
fn destination(return_to: Option<&str>) -> String {
    return_to
        .and_then(safe_return_to)
        .filter(|path| path.starts_with("/admin") && !path.starts_with("/admin/verify"))
        .unwrap_or("/admin")
        .to_owned()
}

async fn render(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    return_to: &str,
    message: Option<&'static str>,
) -> Response {
    let mfa = match state.accounts.mfa.my_mfa(principal).await {
        Ok(mfa) => mfa,
        Err(error) => return state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    };
    let kinds: Vec<&str> = mfa.factors.iter().map(|factor| factor.kind).collect();
    let view = context! {
        return_to => return_to,
        has_factor => mfa.enabled,
        totp => kinds.contains(&"totp"),
        email => kinds.contains(&"email"),
        sms => kinds.contains(&"sms"),
        backup_codes => mfa.backup_codes_remaining > 0,
        has_password => principal.user.password_hash.is_some(),
        message => message,
        admin_section => "",
        admin_name => crate::pages::session::display_name(state, principal),
    };
    state.pages.render_form(status, locale, csrf, "admin_verify.html", view)
}

fn signed_in_admin(
    state: &AppState,
    session: Option<Principal>,
    locale: Locale,
    here: &str,
) -> Result<Principal, Box<Response>> {
    let Some(principal) = session else {
        let query = serde_urlencoded::to_string([("return_to", here)]).unwrap_or_default();
        return Err(Box::new(state.pages.redirect(&format!("/login?{query}"))));
    };
    if gatehouse_domain::principal::AdminPrincipal::from_user(&principal).is_err() {
        let refused = DomainError::Forbidden("not an admin".into());
        return Err(Box::new(super::error_page(state, locale, &refused)));
    }
    Ok(principal)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let query: VerifyQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let return_to = destination(query.return_to.as_deref());
    let here = format!(
        "/admin/verify?{}",
        serde_urlencoded::to_string([("return_to", return_to.as_str())]).unwrap_or_default()
    );
    let principal = match signed_in_admin(&state, session, page.locale, &here) {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    render(&state, &principal, page.locale, &page.csrf, StatusCode::OK, &return_to, None).await
}

#[derive(Deserialize)]
pub(crate) struct VerifyForm {
    return_to: Option<String>,
    /// `totp`, `backup_code`, `email`, `sms`, or `password`.
    method: String,
    code: Option<String>,
    password: Option<String>,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<VerifyForm>,
) -> Response {
    let return_to = destination(form.fields.return_to.as_deref());
    let principal = match signed_in_admin(&state, session, form.locale, "/admin/verify") {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    let proof = if form.fields.method == "password" {
        Reauthentication { password: form.fields.password.clone(), ..Reauthentication::default() }
    } else {
        Reauthentication {
            method: Some(form.fields.method.clone()),
            code: form.fields.code.clone().map(|code| code.trim().replace(' ', "")),
            ..Reauthentication::default()
        }
    };
    // Without a second factor the password is the proof; with one, only the factor opens the
    // dashboard.
    let has_factor = match state.accounts.mfa.my_mfa(&principal).await {
        Ok(mfa) => mfa.enabled,
        Err(error) => return state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    };
    if proof.is_empty() || (has_factor && form.fields.method == "password") {
        return render(
            &state,
            &principal,
            form.locale,
            &form.csrf,
            StatusCode::UNPROCESSABLE_ENTITY,
            &return_to,
            Some("admin.verify.wrong"),
        )
        .await;
    }
    match state.accounts.mfa.reauthenticate(&principal, proof, &context).await {
        Ok(_) => state.pages.redirect(&return_to),
        Err(DomainError::InvalidCredentials | DomainError::Mfa(_) | DomainError::Validation(_)) => {
            render(
                &state,
                &principal,
                form.locale,
                &form.csrf,
                StatusCode::UNAUTHORIZED,
                &return_to,
                Some("admin.verify.wrong"),
            )
            .await
        }
        Err(DomainError::RateLimited { .. }) => {
            render(
                &state,
                &principal,
                form.locale,
                &form.csrf,
                StatusCode::TOO_MANY_REQUESTS,
                &return_to,
                Some("admin.verify.rate_limited"),
            )
            .await
        }
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
pub(crate) struct SendForm {
    return_to: Option<String>,
    /// `email` or `sms`.
    method: String,
}

/// Sends a step-up code to the admin's email or phone factor, then shows the form again.
pub(crate) async fn send_code(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<SendForm>,
) -> Response {
    let return_to = destination(form.fields.return_to.as_deref());
    let principal = match signed_in_admin(&state, session, form.locale, "/admin/verify") {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    let sent = state
        .accounts
        .mfa
        .send_reauthentication_code(&principal, &form.fields.method, &context)
        .await;
    let (status, message) = match sent {
        Ok(()) => (StatusCode::OK, "admin.verify.sent"),
        Err(DomainError::RateLimited { .. }) => {
            (StatusCode::TOO_MANY_REQUESTS, "admin.verify.rate_limited")
        }
        Err(DomainError::Mfa(_) | DomainError::Validation(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "admin.verify.wrong")
        }
        Err(error) => return state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    };
    render(&state, &principal, form.locale, &form.csrf, status, &return_to, Some(message)).await
}
