//! What several services answer together, for a route and a page alike (so neither imports
//! the other): the dependencies' readiness (`/readyz`, the admin overview's service health),
//! the admin overview (`GET /v1/admin/stats`, `/admin`), and the account's data export
//! (`GET /v1/me/export`, `/account/export`), and the audit log's export
//! (`GET /v1/admin/audit-log/export`, `/admin/audit/export`). Below `routes/` and `pages/`,
//! above `state`.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION};
use axum::response::{IntoResponse, Response};
use gatehouse_domain::DomainError;
use gatehouse_domain::overview::Overview;
use gatehouse_domain::principal::Principal;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    pub(crate) status: &'static str,
    /// Each dependency and `ok`, `failed` or (an optional one) `unavailable`.
    pub(crate) checks: BTreeMap<&'static str, &'static str>,
    /// The names of the failed dependencies.
    pub(crate) failed: Vec<&'static str>,
}

/// Every readiness check, run now (also the admin overview's service health).
pub(crate) async fn check_dependencies(state: &AppState) -> Readiness {
    let timeout = state.settings.readiness_timeout;
    // Checks run concurrently so one slow dependency does not hide behind another.
    let mut running = tokio::task::JoinSet::new();
    for check in state.readiness.iter() {
        let check = std::sync::Arc::clone(check);
        running.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (check.name(), check.required(), outcome)
        });
    }
    let mut answer = Readiness { status: "ready", checks: BTreeMap::new(), failed: Vec::new() };
    while let Some(joined) = running.join_next().await {
        let (name, required, outcome) =
            joined.unwrap_or(("readiness", true, Err("check task failed".into())));
        match outcome {
            Ok(()) => {
                answer.checks.insert(name, "ok");
            }
            Err(reason) if !required => {
                tracing::warn!(dependency = name, reason, "optional dependency unavailable");
                answer.checks.insert(name, "unavailable");
            }
            Err(reason) => {
                tracing::warn!(dependency = name, reason, "readiness check failed");
                answer.checks.insert(name, "failed");
                answer.failed.push(name);
            }
        }
    }
    answer.failed.sort_unstable();
    if !answer.failed.is_empty() {
        answer.status = "unavailable";
    }
    answer
}

/// What the overview shows, gathered for one answer.
pub(crate) struct Gathered {
    pub(crate) overview: Overview,
    pub(crate) outbox: Vec<gatehouse_domain::notify::OutboxStat>,
    pub(crate) services: Vec<(&'static str, &'static str)>,
}

/// The overview, the outbox's counts and the services' health, for `days` days.
pub(crate) async fn gather(
    state: &AppState,
    admin: &gatehouse_domain::principal::AdminPrincipal,
    days: u32,
) -> Result<Gathered, gatehouse_domain::DomainError> {
    let overview = state.overview.overview(admin, days).await?;
    let outbox = state.deliveries.stats().await?;
    let readiness = check_dependencies(state).await;
    Ok(Gathered { overview, outbox, services: readiness.checks.into_iter().collect() })
}

/// How many of the user's audit events an export carries (newest first).
const EXPORTED_EVENTS: u32 = 1000;

/// Everything the account holds, readable: profile, sessions, second factors (kinds and
/// dates, never a secret), passkeys, linked identities, organizations, API keys (never a key),
/// connected applications, and the user's audit events. No secret, hash or token.
pub(crate) async fn account_export(
    state: &AppState,
    principal: &Principal,
) -> Result<Value, DomainError> {
    let user = &principal.user;
    let profile = state.accounts.registration.me(user)?;
    let sessions: Vec<Value> = state
        .accounts
        .sessions
        .sessions_of(&user.id)
        .await?
        .into_iter()
        .map(|session| {
            json!({
                "id": session.id, "created_at": session.created_at,
                "last_used_at": session.last_used_at, "expires_at": session.expires_at,
                "ip": session.ip, "user_agent": session.user_agent,
                "client_id": session.client_id,
            })
        })
        .collect();
    let mfa = state.accounts.mfa.my_mfa(principal).await?;
    let passkeys = state.accounts.passkeys.list(principal).await?;
    let identities = state.federation.identities(&user.id).await?;
    let organizations: Vec<Value> = state
        .organizations
        .mine(&user.id)
        .await?
        .into_iter()
        .map(|view| json!({ "id": view.organization.id, "name": view.organization.name, "role": view.role }))
        .collect();
    let api_keys: Vec<Value> = state
        .api_keys
        .personal_keys(principal)
        .await?
        .into_iter()
        .map(|key| {
            json!({
                "id": key.id, "name": key.name, "prefix": key.prefix, "scopes": key.scopes,
                "created_at": key.created_at, "expires_at": key.expires_at,
            })
        })
        .collect();
    let applications = state.oauth.connected_applications(&user.id).await?;
    let events = state.audit_log.own_events(principal, EXPORTED_EVENTS).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    Ok(json!({
        "format": "gatehouse-account-export/1",
        "exported_at": now,
        "profile": profile,
        "sessions": sessions,
        "mfa": mfa,
        "passkeys": passkeys,
        "identities": identities,
        "organizations": organizations,
        "api_keys": api_keys,
        "applications": applications,
        "audit_events": events,
    }))
}

/// The answer of an export: JSON to save as a file, never cached.
pub(crate) fn export_answer(export: &Value) -> Response {
    (
        [
            (CONTENT_DISPOSITION, "attachment; filename=\"gatehouse-account.json\""),
            (CACHE_CONTROL, "no-store"),
        ],
        Json(export.clone()),
    )
        .into_response()
}

/// Every audit event `filter` matches, oldest first, streamed as a file to keep (JSON Lines or
/// CSV). The first batch is read before answering, so a failing database is an error rather
/// than a broken stream; the rest follow one batch at a time as the client reads, so memory
/// stays constant whatever the number of rows.
pub(crate) async fn audit_export(
    state: &AppState,
    admin: gatehouse_domain::principal::AdminPrincipal,
    filter: gatehouse_domain::audit::AuditFilter,
    format: gatehouse_domain::audit::export::ExportFormat,
) -> Result<Response, DomainError> {
    use axum::http::{HeaderValue, header};
    use gatehouse_domain::audit::AuditCursor;
    use gatehouse_domain::audit::export::ExportFormat;

    let log = state.audit_log.clone();
    let first = log.export_batch(&admin, &filter, format, None).await?;
    let head = format!("{}{}", format.header(), first.text);
    let rest = futures_util::stream::unfold(first.next, move |after: Option<AuditCursor>| {
        let log = log.clone();
        let admin = admin.clone();
        let filter = filter.clone();
        async move {
            let after = after?;
            match log.export_batch(&admin, &filter, format, Some(&after)).await {
                Ok(batch) => Some((Ok::<_, std::io::Error>(batch.text), batch.next)),
                Err(error) => {
                    tracing::warn!(%error, "audit export stopped: the stream is cut short");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
            }
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(head)]),
        rest,
    );
    let extension = match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Csv => "csv",
    };
    let disposition = format!("attachment; filename=\"audit-log.{extension}\"");
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
