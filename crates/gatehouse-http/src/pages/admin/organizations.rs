//! `/admin/organizations`: organizations (search by name or slug, newest first, a page at a
//! time), one organization's page with its members and their roles, and deleting it (a recent
//! authentication) — the admin API's `AdminOrganizationService`, same audit events.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::organizations::record::ListCursor;
use minijinja::context;
use serde::Deserialize;

use super::{Empty, admit, admit_recent, error_page, frame, item_path, when};
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

/// `<created_at>.<id>`, the position after an organization in the newest-first list.
fn cursor_text(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

fn parse_cursor(text: &str) -> Option<ListCursor> {
    let (time, id) = text.split_once('.')?;
    let valid = id.starts_with("org_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| Some(ListCursor { created_at: time.parse().ok()?, id: id.to_owned() })).flatten()
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/organizations").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let Ok(query) = serde_urlencoded::from_str::<ListQuery>(raw.as_deref().unwrap_or("")) else {
        return state.pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let search = query
        .q
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && text.len() <= 200);
    let cursor = match query.cursor.as_deref().filter(|text| !text.is_empty()) {
        Some(text) => match parse_cursor(text) {
            Some(cursor) => Some(cursor),
            None => return state.pages.error_page(page.locale, ErrorPage::bad_request()),
        },
        None => None,
    };
    let listed = state
        .admin_organizations
        .list(&visit.admin, search.as_deref(), cursor.as_ref(), PAGE_SIZE + 1)
        .await;
    let mut organizations = match listed {
        Ok(organizations) => organizations,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let next = (organizations.len() > PAGE_SIZE as usize).then(|| {
        organizations.truncate(PAGE_SIZE as usize);
        organizations.last().map(|last| {
            let mut pairs = vec![("cursor", cursor_text(last.created_at, &last.id))];
            if let Some(search) = &search {
                pairs.push(("q", search.clone()));
            }
            format!(
                "/admin/organizations?{}",
                serde_urlencoded::to_string(pairs).unwrap_or_default()
            )
        })
    });
    let rows: Vec<_> = organizations
        .iter()
        .map(|organization| {
            context! {
                path => item_path("organizations", &organization.id),
                id => organization.id.clone(),
                name => organization.name.clone(),
                slug => organization.slug.clone(),
                created => when(organization.created_at),
            }
        })
        .collect();
    let view = context! {
        organizations => rows,
        next => next.flatten(),
        q => search,
        ..frame(&state, &visit, "organizations")
    };
    state.pages.render_form(
        StatusCode::OK,
        page.locale,
        &page.csrf,
        "admin_organizations.html",
        view,
    )
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
) -> Response {
    let visit = match admit(&state, session, page.locale, &item_path("organizations", &id)).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let organization = match state.admin_organizations.get(&visit.admin, &id).await {
        Ok(organization) => organization,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let members = match state.admin_organizations.members(&visit.admin, &id, None, 200).await {
        Ok(members) => members,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let members: Vec<_> = members
        .into_iter()
        .map(|member| {
            let email =
                state.accounts.directory.view(&member.user).ok().and_then(|view| view.email);
            context! {
                user_id => member.user.id.clone(),
                email => email,
                role => member.membership.role,
                since => when(member.membership.created_at),
            }
        })
        .collect();
    let view = context! {
        organization => context! {
            id => organization.id.clone(),
            path => item_path("organizations", &organization.id),
            name => organization.name,
            slug => organization.slug,
            created => when(organization.created_at),
        },
        members => members,
        ..frame(&state, &visit, "organizations")
    };
    state.pages.render_form(
        StatusCode::OK,
        page.locale,
        &page.csrf,
        "admin_organization.html",
        view,
    )
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<Empty>,
) -> Response {
    let back = item_path("organizations", &id);
    let visit = match admit_recent(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.admin_organizations.delete(&visit.admin, &id, &context).await {
        Ok(()) => state.pages.redirect("/admin/organizations"),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
