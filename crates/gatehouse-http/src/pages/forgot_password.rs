//! `/forgot-password`: the form that asks for a password-reset link. Its POST answers the same
//! for every address (the domain does the same work for unknown ones) and shares the API's
//! per-IP budget for requests that send email.

use axum::extract::State;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;

use super::request::{PageForm, PageRequest};
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::error::ErrorForLog;
use crate::ratelimit::{Bucket, Verdict, insert_headers};
use crate::state::AppState;

/// No `Debug`: it holds an address.
#[derive(Deserialize)]
pub(crate) struct ForgotForm {
    #[serde(default)]
    email: String,
}

pub(crate) async fn show(State(state): State<AppState>, page: PageRequest) -> Response {
    let context = context! { sent => false, error => None::<&str> };
    state.pages.render_form(
        StatusCode::OK,
        page.locale,
        &page.csrf,
        "forgot_password.html",
        context,
    )
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Client(context): Client,
    form: PageForm<ForgotForm>,
) -> Response {
    let PageForm { locale, csrf, fields } = form;
    let pages = &state.pages;
    let ip = context.ip.as_deref();
    if let Verdict::Refused { decision, retry_after_seconds } =
        state.rate_limit_policy().spend(Bucket::Email, ip).await
    {
        let view = context! { sent => false, error => "forgot_password.rate_limited" };
        let mut response = pages.render_form(
            StatusCode::TOO_MANY_REQUESTS,
            locale,
            &csrf,
            "forgot_password.html",
            view,
        );
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        insert_headers(response.headers_mut(), &decision);
        response.extensions_mut().insert(ErrorForLog { code: "rate_limited", internal: None });
        return response;
    }
    if let Err(error) =
        state.accounts.email_links.forgot_password(fields.email.trim(), &context).await
    {
        return pages.error_page(locale, ErrorPage::from_domain(&error));
    }
    let view = context! { sent => true, error => None::<&str> };
    pages.render_form(StatusCode::OK, locale, &csrf, "forgot_password.html", view)
}
