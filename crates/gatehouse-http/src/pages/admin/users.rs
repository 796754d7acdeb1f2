//! `/admin/users`: find an account (by id, email address or username), list them a page at a
//! time, and one account's detail — profile, sessions, second factors, passkeys, linked
//! identities, organizations, recent audit events — with the actions an admin takes on it:
//! suspend or unsuspend, clear a lockout, end one or every session, reset the second factors.
//! Each action is the admin API's (same services, same `AdminPrincipal`, same audit events).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_domain::DomainError;
use gatehouse_domain::audit::AuditFilter;
use minijinja::context;
use serde::Deserialize;

use super::{AdminVisit, admit, error_page, frame, item_path, verify_first, when};
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::pages::request::{PageForm, PageRequest};
use crate::pages::session::BrowserSession;
use crate::state::AppState;

const PAGE_SIZE: u32 = 25;

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
}

fn user_row(user: &gatehouse_domain::users::view::UserView) -> minijinja::Value {
    let admin = user.admin.as_ref();
    context! {
        id => user.id.clone(),
        email => user.email.clone(),
        username => user.username.clone(),
        name => [user.first_name.as_deref(), user.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        email_verified => user.email_verified,
        suspended => admin.is_some_and(|fields| fields.suspended),
        admin => admin.and_then(|fields| fields.system_role.as_deref()) == Some("admin"),
        created => when(user.created_at),
        last_sign_in => user.last_sign_in_at.map(when),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    RawQuery(raw): RawQuery,
) -> Response {
    let here =
        raw.as_ref().map_or("/admin/users".to_owned(), |query| format!("/admin/users?{query}"));
    let visit = match admit(&state, session, page.locale, &here).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let Ok(query) = serde_urlencoded::from_str::<ListQuery>(raw.as_deref().unwrap_or("")) else {
        return state.pages.error_page(page.locale, ErrorPage::bad_request());
    };
    let search = query.q.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
    let admin_users = &state.accounts.admin_users;
    let (users, next) = match &search {
        Some(text) if text.len() <= 320 => match admin_users.find(&visit.admin, text).await {
            Ok(found) => (found.iter().map(user_row).collect::<Vec<_>>(), None),
            Err(error) => return error_page(&state, page.locale, &error),
        },
        Some(_) => (Vec::new(), None),
        None => {
            let cursor = query.cursor.filter(|cursor| !cursor.is_empty());
            match admin_users.list(&visit.admin, cursor, PAGE_SIZE, None).await {
                Ok(page) => (
                    page.users.iter().map(user_row).collect(),
                    page.next_cursor.map(|cursor| {
                        format!(
                            "/admin/users?{}",
                            serde_urlencoded::to_string([("cursor", cursor)]).unwrap_or_default()
                        )
                    }),
                ),
                Err(error) => return error_page(&state, page.locale, &error),
            }
        }
    };
    let view = context! {
        users => users,
        next => next,
        q => search,
        ..frame(&state, &visit, "users")
    };
    state.pages.render_form(StatusCode::OK, page.locale, &page.csrf, "admin_users.html", view)
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
) -> Response {
    let here = item_path("users", &id);
    let visit = match admit(&state, session, page.locale, &here).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match detail(&state, &visit, &id).await {
        Ok(view) => state.pages.render_form(
            StatusCode::OK,
            page.locale,
            &page.csrf,
            "admin_user.html",
            context! { ..view, ..frame(&state, &visit, "users") },
        ),
        Err(error) => error_page(&state, page.locale, &error),
    }
}

async fn detail(
    state: &AppState,
    visit: &AdminVisit,
    id: &str,
) -> Result<minijinja::Value, DomainError> {
    let admin = &visit.admin;
    let user = state.accounts.admin_users.get(admin, id).await?;
    let fields = user.admin.clone();
    let sessions: Vec<_> = state
        .accounts
        .sessions
        .sessions_of(id)
        .await?
        .into_iter()
        .map(|session| {
            let current = session.id == visit.principal.session.id;
            let amr = session.amr_values().join(" ");
            context! {
                current => current,
                amr => amr,
                id => session.id,
                created => when(session.created_at),
                last_used => when(session.last_used_at),
                expires => when(session.expires_at),
                ip => session.ip,
                user_agent => session.user_agent,
                client_id => session.client_id,
            }
        })
        .collect();
    let mfa = state.accounts.mfa.admin_user_mfa(admin, id).await?;
    let factors: Vec<_> = mfa
        .factors
        .iter()
        .map(|factor| {
            context! {
                kind => factor.kind,
                created => when(factor.created_at),
                last_used => factor.last_used_at.map(when),
                phone => factor.phone_number.clone(),
            }
        })
        .collect();
    let passkeys: Vec<_> = state
        .accounts
        .passkeys
        .admin_list(admin, id)
        .await?
        .into_iter()
        .map(|passkey| {
            context! {
                name => passkey.name,
                synced => passkey.synced,
                created => when(passkey.created_at),
                last_used => passkey.last_used_at.map(when),
                flagged => passkey.flagged_at.is_some(),
            }
        })
        .collect();
    let identities: Vec<_> = state
        .federation
        .identities(id)
        .await?
        .into_iter()
        .map(|identity| {
            context! {
                provider => identity.provider_name,
                email => identity.email,
                created => when(identity.created_at),
                last_used => identity.last_used_at.map(when),
            }
        })
        .collect();
    let organizations: Vec<_> = state
        .organizations
        .mine(id)
        .await?
        .into_iter()
        .map(|view| {
            context! {
                id => view.organization.id,
                name => view.organization.name,
                role => view.role,
            }
        })
        .collect();
    let filter = AuditFilter { subject_id: Some(id.to_owned()), ..AuditFilter::default() };
    let recent: Vec<_> = state
        .audit_log
        .list(admin, &filter, None, 10)
        .await?
        .events
        .into_iter()
        .map(|event| {
            context! {
                when => when(event.occurred_at),
                action => event.action,
                actor => event.actor_id.unwrap_or(event.actor_type),
                ip => event.ip,
            }
        })
        .collect();
    Ok(context! {
        user => user_row(&user),
        first_name => user.first_name,
        last_name => user.last_name,
        has_password => user.has_password,
        locked_until => fields.as_ref().and_then(|fields| fields.locked_until).map(when),
        failed_attempts => fields.as_ref().map_or(0, |fields| fields.failed_sign_in_attempts),
        sessions => sessions,
        factors => factors,
        backup_codes_remaining => mfa.backup_codes_remaining,
        passkeys => passkeys,
        identities => identities,
        organizations => organizations,
        recent => recent,
        audit_link => format!("/admin/audit?{}", serde_urlencoded::to_string([("subject", id)]).unwrap_or_default()),
    })
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    /// `suspend`, `unsuspend`, `unlock`, `revoke_sessions`, `revoke_session` (with
    /// `session_id`), `reset_mfa`, `verify_email`, `send_password_reset` or `delete`.
    action: String,
    session_id: Option<String>,
}

/// One action on the account, then back to its page (or to `/admin/verify` first when the
/// action needs a recent authentication the session does not have).
pub(crate) async fn act(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    Path(id): Path<String>,
    form: PageForm<ActionForm>,
) -> Response {
    let back = item_path("users", &id);
    let visit = match admit(&state, session, form.locale, &back).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let admin = &visit.admin;
    let destructive = matches!(
        form.fields.action.as_str(),
        "suspend" | "revoke_sessions" | "revoke_session" | "reset_mfa" | "delete"
    );
    if destructive && let Some(redirect) = verify_first(&state, &visit, &back) {
        return redirect;
    }
    let accounts = &state.accounts;
    let outcome = match form.fields.action.as_str() {
        "suspend" => accounts.admin_users.set_suspended(admin, &id, true, &context).await.map(drop),
        "unsuspend" => {
            accounts.admin_users.set_suspended(admin, &id, false, &context).await.map(drop)
        }
        "unlock" => accounts.admin_users.unlock(admin, &id, &context).await.map(drop),
        "revoke_sessions" => {
            accounts.sessions.admin_revoke_sessions(admin, &id, None, &context).await.map(drop)
        }
        "revoke_session" => match form.fields.session_id.as_deref() {
            Some(session_id) => accounts
                .sessions
                .admin_revoke_sessions(admin, &id, Some(session_id), &context)
                .await
                .map(drop),
            None => Err(DomainError::NotFound),
        },
        "reset_mfa" => accounts.mfa.admin_reset_mfa(admin, &id, &context).await,
        "verify_email" => {
            let update = gatehouse_domain::admin_users::AdminUserUpdate {
                email_verified: Some(true),
                ..Default::default()
            };
            accounts.admin_users.update(admin, &id, update, &context).await.map(drop)
        }
        // The user's own "forgot password" email: a reset link only they receive.
        "send_password_reset" => {
            accounts.email_links.admin_send_password_reset(admin, &id, &context).await
        }
        "delete" => match accounts.admin_users.delete(admin, &id, &context).await {
            Ok(()) => return state.pages.redirect("/admin/users"),
            Err(error) => Err(error),
        },
        _ => return state.pages.error_page(form.locale, ErrorPage::bad_request()),
    };
    match outcome {
        Ok(()) => state.pages.redirect(&back),
        Err(error) => error_page(&state, form.locale, &error),
    }
}
