//! `/admin/webhooks`: the webhook endpoints (URL, subscriptions, active, failing since when),
//! one endpoint's delivery log (each delivery's status, attempts and what the last attempt
//! saw) with redelivery, a test message, and switching an endpoint on or off — the admin API's
//! `WebhookService` and `DeliveryService`, same audit events. Endpoints are registered through
//! the API (their signing secret is shown once there).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::webhooks::WebhookChange;
use minijinja::context;
use serde::Deserialize;

use super::{admit, error_page, frame, item_path, when};
use crate::client::Client;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

/// How many deliveries an endpoint's page lists (newest first).
const DELIVERIES_SHOWN: u32 = 50;

fn endpoint_value(record: &gatehouse_domain::webhooks::WebhookRecord) -> minijinja::Value {
    context! {
        id => record.id.clone(),
        path => item_path("webhooks", &record.id),
        url => record.url.clone(),
        description => record.description.clone(),
        events => record.events.join(", "),
        active => record.active,
        failing_since => record.failing_since.map(when),
        created => when(record.created_at),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/webhooks").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let endpoints = match state.webhooks.list(&visit.admin).await {
        Ok(endpoints) => endpoints,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let view = context! {
        endpoints => endpoints.iter().map(endpoint_value).collect::<Vec<_>>(),
        ..frame(&state, &visit, "webhooks")
    };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_webhooks.html", view)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
) -> Response {
    let visit = match admit(&state, session, page.locale, &item_path("webhooks", &id)).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let endpoint = match state.webhooks.get(&visit.admin, &id).await {
        Ok(endpoint) => endpoint,
        Err(error) => return error_page(&state, page.locale, &error),
    };
    let deliveries =
        match state.webhooks.deliveries(&visit.admin, &id, None, DELIVERIES_SHOWN).await {
            Ok(deliveries) => deliveries,
            Err(error) => return error_page(&state, page.locale, &error),
        };
    let deliveries: Vec<_> = deliveries
        .into_iter()
        .map(|delivery| {
            let last = delivery.last_attempt;
            context! {
                id => delivery.id,
                event_type => delivery.event_type,
                status => delivery.status,
                attempts => delivery.attempts,
                created => when(delivery.created_at),
                delivered => delivery.delivered_at.map(when),
                next_attempt => when(delivery.next_attempt_at),
                last_status => last.as_ref().and_then(|attempt| attempt.status_code),
                last_error => last.as_ref().and_then(|attempt| attempt.error.clone()),
                last_duration => last.as_ref().map(|attempt| attempt.duration_ms),
            }
        })
        .collect();
    let view = context! {
        endpoint => endpoint_value(&endpoint),
        deliveries => deliveries,
        ..frame(&state, &visit, "webhooks")
    };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_webhook.html", view)
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    /// `test`, `enable`, `disable` or `redeliver` (with `delivery_id`).
    action: String,
    delivery_id: Option<String>,
}

pub(crate) async fn act(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<ActionForm>,
) -> Response {
    let back = item_path("webhooks", &id);
    let visit = match admit(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let admin = &visit.admin;
    let outcome = match form.fields.action.as_str() {
        "test" => state.webhooks.send_test(admin, &id, &context).await.map(drop),
        "enable" | "disable" => {
            let change = WebhookChange {
                active: Some(form.fields.action == "enable"),
                ..WebhookChange::default()
            };
            state.webhooks.update(admin, &id, change, &context).await.map(drop)
        }
        // Only this endpoint's deliveries are redelivered from its page.
        "redeliver" => match form.fields.delivery_id.as_deref() {
            Some(delivery) => {
                state.deliveries.retry_for_webhook(admin, &id, delivery, &context).await
            }
            None => Err(DomainError::NotFound),
        },
        _ => Err(DomainError::Invalid("unknown action".into())),
    };
    match outcome {
        Ok(()) => state.pages.redirect(&back),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
