//! `GET /admin/audit`: the audit log, newest first, filtered by action, actor, target or any
//! id (`subject`), a page at a time (the admin API's search, the same filters); each event's
//! metadata is shown as JSON; and `GET /admin/audit/export` (`format=jsonl|csv`), the same
//! filters' every event as a file to keep, streamed like `/v1/admin/audit-log/export`.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use gatehouse_domain::audit::AuditFilter;
use gatehouse_domain::audit::export::ExportFormat;
use minijinja::context;
use serde::Deserialize;

use super::{admit, error_page, frame, when};
use crate::browser::render::ErrorPage;
use crate::pages::request::PageRequest;
use crate::pages::session::BrowserSession;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

#[derive(Deserialize, Default)]
struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    subject: Option<String>,
    cursor: Option<String>,
    /// The export's: `jsonl` (the default) or `csv`.
    format: Option<String>,
}

fn filled(value: Option<String>) -> Option<String> {
    value.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty() && text.len() <= 200)
}

/// The admin at `path` (with its query, to come back to) and the query's filters; the gate's
/// redirect or a 400 page otherwise.
async fn visit_with_query(
    state: &AppState,
    session: Option<gatehouse_domain::principal::Principal>,
    page: &PageRequest,
    path: &str,
    raw: Option<String>,
) -> Result<(super::AdminVisit, AuditQuery), Response> {
    let here = match &raw {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let visit = admit(state, session, page.locale, &here).await?;
    let Ok(query) = serde_urlencoded::from_str::<AuditQuery>(raw.as_deref().unwrap_or("")) else {
        return Err(state.pages.error_page(page.locale, ErrorPage::bad_request()));
    };
    Ok((visit, query))
}

/// The search's filters (blank or overlong fields ignored).
fn filter_of(query: AuditQuery) -> AuditFilter {
    AuditFilter {
        action: filled(query.action),
        actor_id: filled(query.actor),
        target_id: filled(query.target),
        subject_id: filled(query.subject),
        ..AuditFilter::default()
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let (visit, query) = match visit_with_query(&state, session, &page, "/admin/audit", raw).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let cursor = filled(query.cursor.clone());
    let filter = filter_of(query);
    let listed = state.audit_log.list(&visit.admin, &filter, cursor.as_deref(), PAGE_SIZE).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let next_cursor = listed.next_cursor;
    let events: Vec<_> = listed
        .events
        .into_iter()
        .map(|event| {
            context! {
                id => event.id,
                when => when(event.occurred_at),
                action => event.action,
                actor => event.actor_id.clone().unwrap_or_else(|| event.actor_type.clone()),
                metadata => serde_json::to_string(&event.metadata).unwrap_or_default(),
                actor_type => event.actor_type,
                target_type => event.target_type,
                target => event.target_id,
                ip => event.ip,
            }
        })
        .collect();
    let filters = [
        ("action", filter.action.as_deref()),
        ("actor", filter.actor_id.as_deref()),
        ("target", filter.target_id.as_deref()),
        ("subject", filter.subject_id.as_deref()),
    ];
    let export = |format: &str| {
        let mut kept: Vec<(&str, &str)> =
            filters.iter().filter_map(|(key, value)| value.map(|value| (*key, value))).collect();
        kept.push(("format", format));
        format!("/admin/audit/export?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
    };
    let (export_jsonl, export_csv) = (export("jsonl"), export("csv"));
    let next = next_cursor.map(|cursor| {
        let pairs = [
            ("action", filter.action.as_deref()),
            ("actor", filter.actor_id.as_deref()),
            ("target", filter.target_id.as_deref()),
            ("subject", filter.subject_id.as_deref()),
            ("cursor", Some(cursor.as_str())),
        ];
        let kept: Vec<(&str, &str)> =
            pairs.iter().filter_map(|(key, value)| value.map(|value| (*key, value))).collect();
        format!("/admin/audit?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
    });
    let view = context! {
        events => events,
        next => next,
        action => filter.action,
        actor => filter.actor_id,
        target => filter.target_id,
        subject => filter.subject_id,
        export_jsonl => export_jsonl,
        export_csv => export_csv,
        ..frame(&state, &visit, "audit")
    };
    state.pages.render_form(
        axum::http::StatusCode::OK,
        page.locale,
        &page.csrf,
        "admin_audit.html",
        view,
    )
}

/// Every event the filters match, oldest first, as a file (JSON Lines or CSV).
pub(crate) async fn export(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = "/admin/audit/export";
    let (visit, query) = match visit_with_query(&state, session, &page, path, raw).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let format = match query.format.as_deref() {
        None | Some("jsonl") => ExportFormat::Jsonl,
        Some("csv") => ExportFormat::Csv,
        Some(_) => return state.pages.error_page(page.locale, ErrorPage::bad_request()),
    };
    let filter = filter_of(query);
    match crate::summaries::audit_export(&state, visit.admin, filter, format).await {
        Ok(response) => response,
        Err(error) => error_page(&state, page.locale, &error),
    }
}
