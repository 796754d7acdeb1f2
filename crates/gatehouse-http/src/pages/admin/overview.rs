//! `GET /admin`: the overview — sign-ins, failed sign-ins and sign-ups per day over the last
//! 30 days as bar charts, active sessions and accounts, the outbox by channel and status, and
//! each backing service's health (what `GET /v1/admin/stats` answers).

use axum::extract::State;
use axum::response::Response;
use minijinja::context;

use super::charts::{BarChart, bar_chart};
use super::{admit, error_page, frame, when};
use crate::pages::request::PageRequest;
use crate::pages::session::BrowserSession;
use crate::state::AppState;
use crate::summaries::gather;

const DAYS: u32 = 30;

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let gathered = match gather(&state, &visit.admin, DAYS).await {
        Ok(gathered) => gathered,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let days = &gathered.overview.days;
    let series = |pick: fn(&gatehouse_domain::overview::DayCounts) -> i64| {
        days.iter().map(|day| (day.date.clone(), pick(day))).collect::<Vec<_>>()
    };
    let charts = [
        bar_chart("admin.overview.sign_ins", "bar-sign-ins", &series(|day| day.sign_ins)),
        bar_chart(
            "admin.overview.failed_sign_ins",
            "bar-failed",
            &series(|day| day.failed_sign_ins),
        ),
        bar_chart("admin.overview.sign_ups", "bar-sign-ups", &series(|day| day.sign_ups)),
    ];
    let outbox: Vec<_> = gathered
        .outbox
        .iter()
        .map(|stat| {
            context! {
                channel => stat.channel.clone(),
                status => stat.status.as_str(),
                count => stat.count,
                oldest => when(stat.oldest_created_at),
            }
        })
        .collect();
    let services: Vec<_> = gathered
        .services
        .iter()
        .map(|(name, status)| context! { name => *name, status => *status })
        .collect();
    let view = context! {
        days => DAYS,
        charts => charts.iter().map(BarChart::value).collect::<Vec<_>>(),
        active_sessions => gathered.overview.active_sessions,
        users => gathered.overview.users,
        outbox => outbox,
        services => services,
        ..frame(&state, &visit, "overview")
    };
    state.pages.render_form(
        axum::http::StatusCode::OK,
        page.locale,
        &page.csrf,
        "admin_overview.html",
        view,
    )
}
