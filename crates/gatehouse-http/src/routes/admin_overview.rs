//! `GET /v1/admin/stats`: the admin overview — sign-ins, failed sign-ins and sign-ups per UTC day
//! (from the audit trail), active sessions and accounts, the outbox by channel and status, and
//! each backing service's health. The dashboard's first page shows the same.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_domain::overview::DayCounts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/stats", get(stats))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    /// How many UTC days, today included: 1 to 90 (default 30).
    days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DayResponse {
    /// `YYYY-MM-DD` (UTC).
    date: String,
    sign_ins: i64,
    failed_sign_ins: i64,
    sign_ups: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboxResponse {
    channel: String,
    /// `pending`, `sending`, `delivered` or `dead`.
    status: String,
    count: i64,
    oldest_created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceResponse {
    name: String,
    /// `ok`, `failed` or (an optional service) `unavailable`.
    status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsResponse {
    /// Oldest first; the last is today so far.
    days: Vec<DayResponse>,
    active_sessions: i64,
    users: i64,
    outbox: Vec<OutboxResponse>,
    services: Vec<ServiceResponse>,
}

/// The admin overview.
#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, body = StatsResponse), (status = 401, body = crate::error::Problem),
    (status = 403, body = crate::error::Problem),
    (status = 422, description = "validation_failed (days out of range)", body = crate::error::Problem)))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatsResponse>, ApiError> {
    let gathered = crate::summaries::gather(&state, &admin, query.days.unwrap_or(30)).await?;
    Ok(Json(StatsResponse {
        days: gathered.overview.days.into_iter().map(day_response).collect(),
        active_sessions: gathered.overview.active_sessions,
        users: gathered.overview.users,
        outbox: gathered
            .outbox
            .into_iter()
            .map(|stat| OutboxResponse {
                channel: stat.channel,
                status: stat.status.as_str().to_owned(),
                count: stat.count,
                oldest_created_at: stat.oldest_created_at,
            })
            .collect(),
        services: gathered
            .services
            .into_iter()
            .map(|(name, status)| ServiceResponse {
                name: name.to_owned(),
                status: status.to_owned(),
            })
            .collect(),
    }))
}

fn day_response(day: DayCounts) -> DayResponse {
    DayResponse {
        date: day.date,
        sign_ins: day.sign_ins,
        failed_sign_ins: day.failed_sign_ins,
        sign_ups: day.sign_ups,
    }
}
