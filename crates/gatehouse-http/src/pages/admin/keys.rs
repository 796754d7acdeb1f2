//! `/admin/keys`: the token signing keys (the active one, retired ones and whether each is
//! still published in the JWKS) with rotation, and the admin API keys with revocation — the
//! admin API's `KeyService::rotate` and `AdminKeyService::revoke`, same audit events. Both
//! changes need a recent authentication.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use minijinja::context;

use super::{Empty, admit, admit_recent, error_page, frame, when};
use crate::client::Client;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

/// How many admin keys the page lists (newest first).
const ADMIN_KEYS_SHOWN: u32 = 100;

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/keys").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let signing = match state.keys.list(&visit.admin).await {
        Ok(keys) => keys,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let admin_keys = match state.admin_keys.list(&visit.admin, None, ADMIN_KEYS_SHOWN).await {
        Ok(keys) => keys,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let signing: Vec<_> = signing
        .into_iter()
        .map(|key| {
            context! {
                kid => key.kid,
                algorithm => key.algorithm.as_str(),
                state => key.state.as_str(),
                published => key.published,
                created => when(key.created_at),
                retired => key.retired_at.map(when),
                publish_until => key.publish_until.map(when),
            }
        })
        .collect();
    let admin_keys: Vec<_> = admin_keys
        .into_iter()
        .map(|key| {
            context! {
                id => key.id,
                name => key.name,
                created => when(key.created_at),
                last_used => key.last_used_at.map(when),
                revoked => key.revoked_at.map(when),
            }
        })
        .collect();
    let view = context! {
        signing => signing,
        admin_keys => admin_keys,
        ..frame(&state, &visit, "keys")
    };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_keys.html", view)
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<Empty>,
) -> Response {
    let visit = match admit_recent(&state, session, form.locale, "/admin/keys").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.keys.rotate(&visit.admin, &context).await {
        // A rotation racing another: the other one won, which is what was asked.
        Ok(_) | Err(DomainError::Conflict(_)) => state.pages.redirect("/admin/keys"),
        Err(error) => error_page(&state, form.locale, &error),
    }
}

pub(crate) async fn revoke_admin_key(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<Empty>,
) -> Response {
    let visit = match admit_recent(&state, session, form.locale, "/admin/keys").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.admin_keys.revoke(&visit.admin, &id, &context).await {
        Ok(_) => state.pages.redirect("/admin/keys"),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
