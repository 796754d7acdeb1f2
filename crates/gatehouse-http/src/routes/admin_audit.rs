//! `/v1/admin/audit-log` (the search, newest first, cursor-paginated) and
//! `/v1/admin/audit-log/export` (every matching row, oldest first, streamed as JSON Lines or
//! CSV in keyset batches, so memory stays constant whatever the number of rows).

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::audit::export::ExportFormat;
use gatehouse_domain::audit::{AuditEvent, AuditFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/audit-log", get(audit_log))
        .route("/v1/admin/audit-log/export", get(export_audit_log))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// Events whose actor or target is this id (a user, a session, an admin key).
    user_id: Option<String>,
    /// Events whose actor is this id (a user, an admin key).
    actor: Option<String>,
    /// Events whose target is this id (a user, a session, an organization, an API key, ...).
    target: Option<String>,
    /// An action, e.g. `session.created` (the event catalogue's names, see the README).
    action: Option<String>,
    /// Events from this client IP address, as recorded.
    ip: Option<String>,
    /// Events concerning this organization (`org_…`).
    organization: Option<String>,
    /// Unix seconds, inclusive.
    since: Option<i64>,
    /// Unix seconds, inclusive (the older name of `since`).
    from: Option<i64>,
    /// Unix seconds, exclusive.
    until: Option<i64>,
}

/// The export's format.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExportFormatParam {
    Jsonl,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditExportQuery {
    /// `jsonl` (the default) or `csv`.
    #[param(inline)]
    format: Option<ExportFormatParam>,
    /// Events whose actor or target is this id.
    user_id: Option<String>,
    /// Events whose actor is this id.
    actor: Option<String>,
    /// Events whose target is this id.
    target: Option<String>,
    action: Option<String>,
    ip: Option<String>,
    organization: Option<String>,
    /// Unix seconds, inclusive.
    since: Option<i64>,
    /// Unix seconds, exclusive.
    until: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/admin/audit-log", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "`{data: [event], next_cursor}`", content_type = "application/json"),
    (status = 400, description = "invalid_query (a parameter of the wrong type or an unknown one)", body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = AuditFilter {
        subject_id: query.user_id,
        actor_id: query.actor,
        target_id: query.target,
        action: query.action,
        ip: query.ip,
        organization_id: query.organization,
        from: query.since.or(query.from),
        until: query.until,
    };
    let page = state
        .audit_log
        .list(&admin, &filter, query.cursor.as_deref(), query.limit.unwrap_or(50))
        .await?;
    let data: Vec<&AuditEvent> = page.events.iter().collect();
    Ok(Json(serde_json::json!({ "data": data, "next_cursor": page.next_cursor })))
}

/// Every matching audit event, oldest first, streamed: JSON Lines (one event per line, the
/// shape of the listing's events) or CSV (a header line, `metadata` as JSON text).
#[utoipa::path(get, path = "/v1/admin/audit-log/export", tag = "admin", security(("bearer" = [])), params(AuditExportQuery),
    responses((status = 200, description = "The events, streamed", content(("application/jsonl"), ("text/csv"))),
    (status = 400, description = "invalid_query (an unknown format, a parameter of the wrong type or an unknown one)", body = crate::error::Problem)))]
pub(crate) async fn export_audit_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<AuditExportQuery>,
) -> Result<Response, ApiError> {
    let format = match query.format.unwrap_or(ExportFormatParam::Jsonl) {
        ExportFormatParam::Jsonl => ExportFormat::Jsonl,
        ExportFormatParam::Csv => ExportFormat::Csv,
    };
    let filter = AuditFilter {
        subject_id: query.user_id,
        actor_id: query.actor,
        target_id: query.target,
        action: query.action,
        ip: query.ip,
        organization_id: query.organization,
        from: query.since,
        until: query.until,
    };
    Ok(crate::summaries::audit_export(&state, admin, filter, format).await?)
}
