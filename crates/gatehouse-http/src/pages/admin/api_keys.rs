//! `/admin/api-keys`: every API key (users' personal keys and organizations' keys) — owner,
//! name, prefix, scopes, last use, expiry, revocation — newest first, with revocation (a
//! recent authentication): the admin API's `ApiKeyService::admin_list` and `admin_revoke`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::api_keys::ApiKeyOwner;
use minijinja::context;

use super::{Empty, admit, admit_recent, error_page, frame, when};
use crate::client::Client;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

/// How many keys the page lists (newest first).
const KEYS_SHOWN: u32 = 200;

pub(crate) async fn list(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/api-keys").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let keys = match state.api_keys.admin_list(&visit.admin, None, KEYS_SHOWN).await {
        Ok(keys) => keys,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    let rows: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let live = key.is_live(now);
            let (owner_kind, owner_id, owner_path) = match &key.owner {
                ApiKeyOwner::User(id) => ("user", id.clone(), format!("/admin/users/{id}")),
                ApiKeyOwner::Organization(id) => {
                    ("organization", id.clone(), format!("/admin/organizations/{id}"))
                }
            };
            context! {
                id => key.id,
                name => key.name,
                prefix => key.prefix,
                scopes => key.scopes.join(" "),
                owner_kind => owner_kind,
                owner_id => owner_id,
                owner_path => owner_path,
                created => when(key.created_at),
                last_used => key.last_used_at.map(when),
                expires => key.expires_at.map(when),
                revoked => key.revoked_at.map(when),
                live => live,
            }
        })
        .collect();
    let view = context! { keys => rows, ..frame(&state, &visit, "api_keys") };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_api_keys.html", view)
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<Empty>,
) -> Response {
    let visit = match admit_recent(&state, session, form.locale, "/admin/api-keys").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.api_keys.admin_revoke(&visit.admin, &id, &context).await {
        Ok(()) => state.pages.redirect("/admin/api-keys"),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
