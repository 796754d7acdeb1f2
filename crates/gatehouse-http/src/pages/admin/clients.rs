//! `/admin/clients`: OAuth clients — the list, registering one (a confidential client's secret
//! is shown once, on the page that answers the registration, and never again), one client's
//! page with its registration as an editable form (names, redirect URIs, grants, scopes,
//! consent), a new secret (shown once; the previous one keeps working for the overlap window)
//! and deletion. The admin API's `ClientService`, same checks, same audit events; rotating and
//! deleting need a recent authentication.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::oauth::client::{
    ClientRecord, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN,
};
use gatehouse_domain::oauth::clients::{ClientChange, NewClient};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{AdminVisit, Empty, admit, admit_recent, error_page, frame, item_path, when};
use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;

fn client_value(client: &ClientRecord) -> Value {
    context! {
        client_id => client.client_id.clone(),
        path => item_path("clients", &client.client_id),
        name => client.name.clone(),
        public => client.is_public(),
        auth_method => client.token_endpoint_auth_method.clone(),
        redirect_uris => client.redirect_uris.clone(),
        redirect_uris_text => client.redirect_uris.join("\n"),
        post_logout_text => client.post_logout_redirect_uris.join("\n"),
        grant_types => client.grant_types.clone(),
        scopes => client.scopes.join(" "),
        skip_consent => client.skip_consent,
        created => when(client.created_at),
        updated => when(client.updated_at),
    }
}

/// The registration form's fields (checkboxes are one field each: forms repeat names, which
/// the form decoder does not collect).
#[derive(Deserialize, Default)]
pub(crate) struct ClientForm {
    name: Option<String>,
    /// `confidential` or `public` (registration only).
    kind: Option<String>,
    redirect_uris: Option<String>,
    post_logout_redirect_uris: Option<String>,
    scopes: Option<String>,
    grant_authorization_code: Option<String>,
    grant_refresh_token: Option<String>,
    grant_client_credentials: Option<String>,
    grant_device_code: Option<String>,
    skip_consent: Option<String>,
}

fn lines(text: &Option<String>) -> Vec<String> {
    text.as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ClientForm {
    fn grant_types(&self) -> Vec<String> {
        [
            (&self.grant_authorization_code, GRANT_AUTHORIZATION_CODE),
            (&self.grant_refresh_token, GRANT_REFRESH_TOKEN),
            (&self.grant_client_credentials, GRANT_CLIENT_CREDENTIALS),
            (&self.grant_device_code, GRANT_DEVICE_CODE),
        ]
        .into_iter()
        .filter(|(checked, _)| checked.is_some())
        .map(|(_, grant)| grant.to_owned())
        .collect()
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect()
    }

    /// What the form shows again after a refusal.
    fn value(&self) -> Value {
        let grants = self.grant_types();
        context! {
            name => self.name.clone().unwrap_or_default(),
            public => self.kind.as_deref() == Some("public"),
            redirect_uris_text => self.redirect_uris.clone().unwrap_or_default(),
            post_logout_text => self.post_logout_redirect_uris.clone().unwrap_or_default(),
            grant_types => grants,
            scopes => self.scopes.clone().unwrap_or_default(),
            skip_consent => self.skip_consent.is_some(),
        }
    }
}

/// The refusal's issues, for the form's alert.
fn issues(error: &DomainError) -> Option<Vec<Value>> {
    match error {
        DomainError::Validation(issues) => Some(
            issues
                .iter()
                .map(|issue| context! { field => issue.field.clone(), message => issue.message.clone() })
                .collect(),
        ),
        DomainError::Conflict(message) => {
            Some(vec![context! { field => "client_id", message => message.clone() }])
        }
        _ => None,
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/clients").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    #[derive(Deserialize, Default)]
    struct ListQuery {
        cursor: Option<String>,
    }
    let query: ListQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let cursor = query.cursor.filter(|cursor| !cursor.is_empty());
    let (clients, next) =
        match state.clients.list_clients(&visit.admin, cursor.as_deref(), PAGE_SIZE).await {
            Ok(listed) => listed,
            Err(error) => return error_page(&state, page.locale, &error),
        };
    let next = next.map(|cursor| {
        format!(
            "/admin/clients?{}",
            serde_urlencoded::to_string([("cursor", cursor)]).unwrap_or_default()
        )
    });
    let view = context! {
        clients => clients.iter().map(client_value).collect::<Vec<_>>(),
        next => next,
        ..frame(&state, &visit, "clients")
    };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_clients.html", view)
}

fn new_form(
    state: &AppState,
    visit: &AdminVisit,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    form: Value,
    problems: Option<Vec<Value>>,
) -> Response {
    let view = context! {
        form => form,
        problems => problems,
        ..frame(state, visit, "clients")
    };
    state.pages.render_form(status, locale, csrf, "admin_client_new.html", view)
}

pub(crate) async fn show_new(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let visit = match admit(&state, session, page.locale, "/admin/clients/new").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let defaults = ClientForm {
        kind: Some("confidential".into()),
        grant_authorization_code: Some("on".into()),
        grant_refresh_token: Some("on".into()),
        scopes: Some("openid profile email offline_access".into()),
        ..ClientForm::default()
    };
    new_form(&state, &visit, page.locale, &page.csrf, StatusCode::OK, defaults.value(), None)
}

/// Registers the client; the answer shows a confidential client's secret, once.
pub(crate) async fn create(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ClientForm>,
) -> Response {
    let visit = match admit(&state, session, form.locale, "/admin/clients/new").await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let fields = &form.fields;
    let request = NewClient {
        client_id: None,
        name: fields.name.clone().unwrap_or_default(),
        secret: None,
        public: fields.kind.as_deref() == Some("public"),
        redirect_uris: lines(&fields.redirect_uris),
        post_logout_redirect_uris: lines(&fields.post_logout_redirect_uris),
        grant_types: fields.grant_types(),
        scopes: fields.scopes(),
        skip_consent: fields.skip_consent.is_some(),
        // Set through the admin API or the CLI; the dashboard leaves it off.
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: false,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        access_token_ttl_seconds: None,
        refresh_token_ttl_seconds: None,
        jwks: None,
    };
    match state.clients.create_client(&visit.admin, request, &context).await {
        Ok((client, secret)) => {
            secret_page(&state, &visit, form.locale, &form.csrf, &client, secret.as_deref(), true)
        }
        Err(error) => match issues(&error) {
            Some(problems) => new_form(
                &state,
                &visit,
                form.locale,
                &form.csrf,
                StatusCode::UNPROCESSABLE_ENTITY,
                fields.value(),
                Some(problems),
            ),
            None => error_page(&state, form.locale, &error),
        },
    }
}

/// The page that shows a secret once (after a registration or a rotation). Never cached
/// (every page is `no-store`).
fn secret_page(
    state: &AppState,
    visit: &AdminVisit,
    locale: Locale,
    csrf: &Csrf,
    client: &ClientRecord,
    secret: Option<&str>,
    created: bool,
) -> Response {
    let view = context! {
        client => client_value(client),
        secret => secret,
        created => created,
        ..frame(state, visit, "clients")
    };
    state.pages.render_form(StatusCode::OK, locale, csrf, "admin_client_secret.html", view)
}

async fn detail_page(
    state: &AppState,
    visit: &AdminVisit,
    locale: Locale,
    csrf: &Csrf,
    client_id: &str,
    status: StatusCode,
    refused: Option<(Value, Vec<Value>)>,
) -> Response {
    let (form, problems) = match refused {
        Some((form, problems)) => (Some(form), Some(problems)),
        None => (None, None),
    };
    let client = match state.clients.get_client(&visit.admin, client_id).await {
        Ok(client) => client,
        Err(error) => return error_page(state, locale, &error),
    };
    let view = context! {
        client => client_value(&client),
        form => form.unwrap_or_else(|| client_value(&client)),
        problems => problems,
        has_secret => client.token_endpoint_auth_method.starts_with("client_secret"),
        ..frame(state, visit, "clients")
    };
    state.pages.render_form(status, locale, csrf, "admin_client.html", view)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Path(client_id): Path<String>,
) -> Response {
    let visit = match admit(&state, session, page.locale, &item_path("clients", &client_id)).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    detail_page(&state, &visit, page.locale, &page.csrf, &client_id, StatusCode::OK, None).await
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(client_id): Path<String>,
    form: PageForm<ClientForm>,
) -> Response {
    let back = item_path("clients", &client_id);
    let visit = match admit(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let fields = &form.fields;
    let change = ClientChange {
        name: fields.name.clone(),
        redirect_uris: Some(lines(&fields.redirect_uris)),
        post_logout_redirect_uris: Some(lines(&fields.post_logout_redirect_uris)),
        grant_types: Some(fields.grant_types()),
        scopes: Some(fields.scopes()),
        skip_consent: Some(fields.skip_consent.is_some()),
        ..ClientChange::default()
    };
    match state.clients.update_client(&visit.admin, &client_id, change, &context).await {
        Ok(_) => state.pages.redirect(&back),
        Err(error) => match issues(&error) {
            Some(problems) => {
                detail_page(
                    &state,
                    &visit,
                    form.locale,
                    &form.csrf,
                    &client_id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some((fields.value(), problems)),
                )
                .await
            }
            None => error_page(&state, form.locale, &error),
        },
    }
}

pub(crate) async fn rotate(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(client_id): Path<String>,
    form: PageForm<Empty>,
) -> Response {
    let back = item_path("clients", &client_id);
    let visit = match admit_recent(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.clients.rotate_client_secret(&visit.admin, &client_id, &context).await {
        Ok((client, secret)) => {
            secret_page(&state, &visit, form.locale, &form.csrf, &client, Some(&secret), false)
        }
        Err(DomainError::ClientHasNoSecret) => {
            state.pages.error_page(form.locale, ErrorPage::bad_request())
        }
        Err(error) => error_page(&state, form.locale, &error),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(client_id): Path<String>,
    form: PageForm<Empty>,
) -> Response {
    let back = item_path("clients", &client_id);
    let visit = match admit_recent(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state.clients.delete_client(&visit.admin, &client_id, &context).await {
        Ok(()) => state.pages.redirect("/admin/clients"),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
