//! `/admin`: the admin dashboard, for users with the system `admin` role, signed in through
//! the hosted pages. It calls the same domain services as the admin API, with the same
//! `AdminPrincipal` (built from the browser session), so there is one source of rules.
//!
//! Rules:
//! - Not signed in: to `/login` and back. Signed in without the admin role: a 403 page.
//! - An admin who has a second factor reaches the dashboard only with a session that used it
//!   (`amr` has `mfa`): otherwise `/admin/verify` asks for it first (a step-up of the session,
//!   as the API's re-authentication does), whatever a trusted browser skipped at sign-in.
//! - Every change is a CSRF-checked POST form answered with a redirect (post/redirect/get);
//!   destructive ones (suspend, revoke sessions, reset MFA) need a recent authentication
//!   (the step-up window), else `/admin/verify` asks again.
//!
//! Sections: `overview` (counts per day as server-drawn SVG charts, outbox and service
//! health), `users` (search, list, detail and the account actions), `clients` (OAuth clients:
//! register with the secret shown once, edit, rotate, delete), `organizations` (search,
//! members, delete), `webhooks` (endpoints, the delivery log with redelivery, a test message,
//! on/off), `api_keys` (every API key, revocation), `keys` (signing keys with rotation, admin API keys
//! with revocation), `audit` (the audit log with
//! filters), `verify` (the second-factor step-up).

mod api_keys;
mod audit;
mod charts;
mod clients;
mod keys;
mod organizations;
mod overview;
mod users;
mod verify;
mod webhooks;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use gatehouse_domain::DomainError;
use gatehouse_domain::principal::{AdminPrincipal, Principal};
use minijinja::{Value, context};

use super::session::display_name;
use crate::browser::render::ErrorPage;
use crate::locale::Locale;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview::show))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}", get(users::show))
        .route("/admin/users/{id}/action", post(users::act))
        .route("/admin/clients", get(clients::list).post(clients::create))
        .route("/admin/clients/new", get(clients::show_new))
        .route("/admin/clients/{id}", get(clients::show).post(clients::update))
        .route("/admin/clients/{id}/rotate-secret", post(clients::rotate))
        .route("/admin/clients/{id}/delete", post(clients::delete))
        .route("/admin/organizations", get(organizations::list))
        .route("/admin/organizations/{id}", get(organizations::show))
        .route("/admin/organizations/{id}/delete", post(organizations::delete))
        .route("/admin/webhooks", get(webhooks::list))
        .route("/admin/webhooks/{id}", get(webhooks::show))
        .route("/admin/webhooks/{id}/action", post(webhooks::act))
        .route("/admin/api-keys", get(api_keys::list))
        .route("/admin/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/admin/keys", get(keys::show))
        .route("/admin/keys/rotate", post(keys::rotate))
        .route("/admin/keys/admin-keys/{id}/revoke", post(keys::revoke_admin_key))
        .route("/admin/audit", get(audit::show))
        .route("/admin/audit/export", get(audit::export))
        .route("/admin/verify", get(verify::show).post(verify::submit))
        .route("/admin/verify/send", post(verify::send_code))
}

/// Who is at the dashboard: the signed-in admin.
pub(crate) struct AdminVisit {
    pub principal: Principal,
    pub admin: AdminPrincipal,
}

/// Whether the session used a second factor (or a passkey that counts as one).
fn used_second_factor(principal: &Principal) -> bool {
    principal.session.amr_values().iter().any(|value| value == "mfa")
}

fn percent_encoded(path: &str) -> String {
    serde_urlencoded::to_string([("return_to", path)]).unwrap_or_default()
}

/// The gate of every dashboard page: the admin, or where to send the browser instead.
/// `here` is the path to come back to.
pub(crate) async fn admit(
    state: &AppState,
    session: Option<Principal>,
    locale: Locale,
    here: &str,
) -> Result<AdminVisit, Response> {
    let Some(principal) = session else {
        return Err(state.pages.redirect(&format!("/login?{}", percent_encoded(here))));
    };
    let Ok(admin) = AdminPrincipal::from_user(&principal) else {
        return Err(error_page(state, locale, &DomainError::Forbidden("not an admin".into())));
    };
    if !used_second_factor(&principal) {
        match state.accounts.mfa.my_mfa(&principal).await {
            Ok(mfa) if mfa.enabled => {
                return Err(state
                    .pages
                    .redirect(&format!("/admin/verify?{}", percent_encoded(here))));
            }
            Ok(_) => {}
            Err(error) => return Err(error_page(state, locale, &error)),
        }
    }
    Ok(AdminVisit { principal, admin })
}

/// A refusal as the dashboard's error page (403, 404, 503, ...).
pub(crate) fn error_page(state: &AppState, locale: Locale, error: &DomainError) -> Response {
    state.pages.error_page(locale, ErrorPage::from_domain(error))
}

/// What every dashboard template sees besides its own: the navigation and who is signed in.
pub(crate) fn frame(state: &AppState, visit: &AdminVisit, section: &str) -> Value {
    context! {
        admin_section => section,
        admin_name => display_name(state, &visit.principal),
    }
}

/// `/admin/<section>/<id>`, the id percent-encoded (ids are URL-safe; this only guards the
/// redirects and links built from a path segment).
pub(crate) fn item_path(section: &str, id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/admin/{section}/{id}")
}

/// The gate of a destructive action: [`admit`], then a recent authentication (else the
/// redirect to `/admin/verify`, and back to `here` once confirmed).
pub(crate) async fn admit_recent(
    state: &AppState,
    session: Option<Principal>,
    locale: Locale,
    here: &str,
) -> Result<AdminVisit, Response> {
    let visit = admit(state, session, locale, here).await?;
    match verify_first(state, &visit, here) {
        Some(redirect) => Err(redirect),
        None => Ok(visit),
    }
}

/// A destructive action's gate: `None` when the sign-in is recent enough, else the redirect
/// to `/admin/verify` (and back to `back` once confirmed).
pub(crate) fn verify_first(state: &AppState, visit: &AdminVisit, back: &str) -> Option<Response> {
    match state.accounts.mfa.require_recent_authentication(&visit.principal) {
        Err(DomainError::ReauthenticationRequired) => {
            let query = serde_urlencoded::to_string([("return_to", back)]).unwrap_or_default();
            Some(state.pages.redirect(&format!("/admin/verify?{query}")))
        }
        _ => None,
    }
}

/// A form with nothing but its CSRF token (and language).
#[derive(serde::Deserialize)]
pub(crate) struct Empty {}

/// A Unix time as `YYYY-MM-DD HH:MM` UTC, for tables.
pub(crate) fn when(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .map(|at| format!("{} {:02}:{:02}", at.date(), at.hour(), at.minute()))
        .unwrap_or_default()
}
