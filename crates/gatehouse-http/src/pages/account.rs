//! `/account`: who is signed in, their active sessions (each can be ended), the applications
//! they connected (consent can be taken back, which also ends those grants), and two-step
//! verification: set up an authenticator app, remove a factor (with the password), make new
//! backup codes, forget trusted browsers; the passkeys (`passkeys`) and linked accounts
//! (`linked_accounts`) sections have their forms in their own modules. Profile and password
//! management come later.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use minijinja::context;
use serde::Deserialize;

use gatehouse_domain::DomainError;
use gatehouse_domain::mfa::FactorKind;
use gatehouse_domain::mfa::Reauthentication;
use gatehouse_domain::principal::Principal;

use super::federation_view::linked_accounts;
use super::passkey_list::passkeys_view;
use super::request::{PageForm, PageRequest};
use super::session::{BrowserSession, display_name};
use crate::browser::csrf::Csrf;
use crate::browser::render::ErrorPage;
use crate::client::Client;
use crate::locale::Locale;
use crate::state::AppState;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/account/sessions/revoke", post(revoke_session))
        .route("/account/applications/revoke", post(revoke_application))
        .route("/account/api-keys/revoke", post(revoke_api_key))
        .route("/account/invitations/answer", post(answer_invitation))
        .route("/account/mfa/totp", post(begin_totp))
        .route("/account/mfa/totp/confirm", post(confirm_totp))
        .route("/account/mfa/remove", post(remove_factor))
        .route("/account/mfa/backup-codes", post(regenerate_backup_codes))
        .route("/account/mfa/email", post(begin_email))
        .route("/account/mfa/sms", post(begin_sms))
        .route("/account/mfa/{kind}/confirm", post(confirm_code_factor))
        .route("/account/devices/revoke", post(forget_device))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: PageRequest,
    BrowserSession(session): BrowserSession,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    account_page(&state, &principal, page.locale, &page.csrf, StatusCode::OK, None).await
}

async fn account_page(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let alert = error.map(AccountAlert::Mfa);
    render_account(state, principal, AccountPage { locale, csrf }, status, alert).await
}

/// A refusal's message (a catalogue key) and the section of the account page it shows in.
#[derive(Clone, Copy)]
pub(crate) enum AccountAlert {
    /// Under `account.mfa` or `mfa.error`.
    Mfa(&'static str),
    /// Under `passkeys.error`.
    Passkeys(&'static str),
    /// Under `linked_accounts.error`.
    LinkedAccounts(&'static str),
}

/// The account page with a refused change's message in its section, logged with `code`.
pub(crate) async fn account_with_error(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    status: StatusCode,
    alert: AccountAlert,
    code: &'static str,
) -> Response {
    let page = AccountPage { locale, csrf };
    let mut response = render_account(state, principal, page, status, Some(alert)).await;
    response.extensions_mut().insert(crate::error::ErrorForLog { code, internal: None });
    response
}

async fn render_account(
    state: &AppState,
    principal: &Principal,
    page: AccountPage<'_>,
    status: StatusCode,
    alert: Option<AccountAlert>,
) -> Response {
    let sessions = match state.accounts.sessions.sessions(principal).await {
        Ok(sessions) => sessions,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let applications = match state.oauth.connected_applications(&principal.user.id).await {
        Ok(applications) => applications,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let sessions: Vec<minijinja::Value> = sessions
        .iter()
        .map(|session| {
            context! {
                id => session.id.clone(),
                current => session.id == principal.session.id,
                user_agent => session.user_agent.clone().unwrap_or_default(),
                ip => session.ip.clone().unwrap_or_default(),
                client_id => session.client_id.clone(),
                created_at => session.created_at,
            }
        })
        .collect();
    let applications: Vec<minijinja::Value> = applications
        .iter()
        .map(|app| context! { client_id => app.client_id.clone(), name => app.client_name.clone(), scopes => app.scopes.join(" ") })
        .collect();
    let organizations = match state.organizations.mine(&principal.user.id).await {
        Ok(organizations) => organizations,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let organizations: Vec<minijinja::Value> = organizations
        .into_iter()
        .map(|view| context! { name => view.organization.name, role => view.role })
        .collect();
    let invitations = match state.invitations.pending_for_me(principal).await {
        Ok(invitations) => invitations,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let invitations: Vec<minijinja::Value> = invitations
        .into_iter()
        .map(|(view, organization)| {
            context! { id => view.id, organization => organization, role => view.role }
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX));
    let api_keys = match state.api_keys.personal_keys(principal).await {
        Ok(keys) => keys,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let api_keys: Vec<minijinja::Value> = api_keys
        .into_iter()
        .filter(|key| key.is_live(now))
        .map(|key| {
            context! {
                id => key.id,
                name => key.name,
                prefix => key.prefix,
                scopes => key.scopes.join(" "),
            }
        })
        .collect();
    let (mfa, devices) = match mfa_view(state, principal).await {
        Ok(view) => view,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let passkeys = match passkeys_view(state, principal, page.locale).await {
        Ok(view) => view,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let linked_accounts = match linked_accounts(state, principal, page.locale).await {
        Ok(view) => view,
        Err(error) => return state.pages.error_page(page.locale, ErrorPage::from_domain(&error)),
    };
    let (mfa_error, passkey_error, linked_accounts_error) = match alert {
        Some(AccountAlert::Mfa(key)) => (Some(key), None, None),
        Some(AccountAlert::Passkeys(key)) => (None, Some(key), None),
        Some(AccountAlert::LinkedAccounts(key)) => (None, None, Some(key)),
        None => (None, None, None),
    };
    let available = state.accounts.passkeys.available();
    let context = context! {
        name => display_name(state, principal),
        sessions => sessions,
        applications => applications,
        organizations => organizations,
        invitations => invitations,
        email_verified => principal.user.email_verified_at.is_some(),
        api_keys => api_keys,
        mfa => mfa,
        devices => devices,
        mfa_error => mfa_error,
        passkeys => passkeys,
        passkey_error => passkey_error,
        linked_accounts => linked_accounts,
        linked_accounts_error => linked_accounts_error,
        impersonation => crate::pages::impersonation::banner(state, principal),
    };
    if available {
        let pages = &state.pages;
        return pages.render_form_with_script(
            status,
            page.locale,
            page.csrf,
            "account.html",
            context,
        );
    }
    state.pages.render_form(status, page.locale, page.csrf, "account.html", context)
}

struct AccountPage<'a> {
    locale: Locale,
    csrf: &'a Csrf,
}

/// The MFA part of the page: factors, backup codes left, trusted browsers.
async fn mfa_view(
    state: &AppState,
    principal: &Principal,
) -> Result<(minijinja::Value, Vec<minijinja::Value>), gatehouse_domain::DomainError> {
    let overview = state.accounts.mfa.my_mfa(principal).await?;
    let devices = state.accounts.mfa.trusted_browsers(principal).await?;
    let factors: Vec<minijinja::Value> = overview
        .factors
        .iter()
        .map(|factor| context! { kind => factor.kind, phone_number => factor.phone_number.clone() })
        .collect();
    let has = |kind: &str| overview.factors.iter().any(|factor| factor.kind == kind);
    let mfa = context! {
        enabled => overview.enabled,
        factors => factors,
        has_totp => has("totp"),
        has_email => has("email"),
        has_sms => has("sms"),
        email_available => state.accounts.mfa.email_codes_available(principal),
        sms_available => state.accounts.mfa.settings().sms_enabled,
        backup_codes_remaining => overview.backup_codes_remaining,
    };
    let devices = devices
        .into_iter()
        .map(|device| {
            context! {
                id => device.id,
                user_agent => device.user_agent.unwrap_or_default(),
                ip => device.ip.unwrap_or_default(),
            }
        })
        .collect();
    Ok((mfa, devices))
}

#[derive(Deserialize)]
struct SessionForm {
    #[serde(default)]
    session_id: String,
}

async fn revoke_session(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<SessionForm>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    match state
        .accounts
        .sessions
        .revoke_own_session(&principal, &form.fields.session_id, &context)
        .await
    {
        Ok(()) | Err(gatehouse_domain::DomainError::NotFound) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
struct ApplicationForm {
    #[serde(default)]
    client_id: String,
}

async fn revoke_application(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ApplicationForm>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    match state.oauth.revoke_consent(&principal, &form.fields.client_id, &context).await {
        Ok(_) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

pub(crate) const SIGN_IN_FIRST: &str = "/login?return_to=%2Faccount";

/// Shows the authenticator-app set-up (the enrolment in progress, or a new one).
async fn begin_totp(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<PasswordForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let proof = fields.proof();
    match state.accounts.mfa.totp_enrolment_in_progress(&principal, proof, &context).await {
        Ok(_) => totp_page(&state, &context, &principal, locale, &csrf, None).await,
        Err(error) => presence_refused(&state, &principal, locale, &csrf, error).await,
    }
}

/// No `Debug`: it holds a password.
#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
}

impl PasswordForm {
    /// The password as a proof of presence; none when the field was left empty (a recent
    /// sign-in is enough then).
    fn proof(self) -> Option<Reauthentication> {
        (!self.password.is_empty()).then(|| Reauthentication {
            password: Some(self.password),
            ..Reauthentication::default()
        })
    }
}

/// The account page with the reason a sensitive action was refused, or the error page.
async fn presence_refused(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    error: DomainError,
) -> Response {
    let (status, key) = match error {
        DomainError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "account.mfa.wrong_password"),
        DomainError::ReauthenticationRequired => {
            (StatusCode::FORBIDDEN, "account.mfa.password_needed")
        }
        DomainError::Mfa(_) => return state.pages.redirect("/account"),
        other => return state.pages.error_page(locale, ErrorPage::from_domain(&other)),
    };
    account_page(state, principal, locale, csrf, status, Some(key)).await
}

async fn totp_page(
    state: &AppState,
    context: &gatehouse_domain::principal::RequestContext,
    principal: &Principal,
    locale: Locale,
    csrf: &Csrf,
    error: Option<&'static str>,
) -> Response {
    // Presence was checked when the set-up began (or by the confirm that failed).
    match state.accounts.mfa.totp_enrolment_in_progress(principal, None, context).await {
        Ok(enrolment) => {
            let view = context! {
                action => "/account/mfa/totp/confirm",
                qr_svg => enrolment.qr_svg,
                secret => enrolment.secret,
                return_to => "/account",
                required => false,
                error => error,
            };
            let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            state.pages.render_form(status, locale, csrf, "mfa_enrol.html", view)
        }
        Err(DomainError::Mfa(_) | DomainError::ReauthenticationRequired) => {
            state.pages.redirect("/account")
        }
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

/// No `Debug`: it holds a code.
#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

async fn confirm_totp(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<CodeForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    match state.accounts.mfa.confirm_totp(&principal, &fields.code, &context).await {
        Ok(codes) => backup_codes_page(&state, locale, codes),
        Err(DomainError::Mfa(gatehouse_domain::MfaProblem::InvalidCode)) => {
            let error = Some("mfa.error.invalid_code");
            totp_page(&state, &context, &principal, locale, &csrf, error).await
        }
        Err(DomainError::Mfa(_)) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

fn backup_codes_page(state: &AppState, locale: Locale, codes: Vec<String>) -> Response {
    let view = context! { codes => codes, continue_url => "/account" };
    state.pages.render(locale, "backup_codes.html", view)
}

/// No `Debug`: it holds a password.
#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    password: String,
}

/// Removes a factor; the password confirms it (the step-up the API asks for).
async fn remove_factor(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<RemoveForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let Some(kind) = FactorKind::parse(&fields.kind) else {
        return state.pages.error_page(locale, ErrorPage::bad_request());
    };
    let proof = Reauthentication { password: Some(fields.password), ..Reauthentication::default() };
    match state.accounts.mfa.remove_factor(&principal, kind, Some(proof), &context).await {
        Ok(()) => state.pages.redirect("/account"),
        Err(error) => presence_refused(&state, &principal, locale, &csrf, error).await,
    }
}

async fn regenerate_backup_codes(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<PasswordForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    match state.accounts.mfa.regenerate_backup_codes(&principal, fields.proof(), &context).await {
        Ok(codes) => backup_codes_page(&state, locale, codes),
        Err(error) => presence_refused(&state, &principal, locale, &csrf, error).await,
    }
}

#[derive(Deserialize)]
struct DeviceForm {
    #[serde(default)]
    device_id: String,
}

async fn forget_device(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<DeviceForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    match state
        .accounts
        .mfa
        .revoke_trusted_browser(&principal, &form.fields.device_id, &context)
        .await
    {
        Ok(()) | Err(DomainError::NotFound) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

/// Starts codes by email: a code goes to the account's address, then the confirm form.
async fn begin_email(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<PasswordForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let proof = fields.proof();
    match state
        .accounts
        .mfa
        .begin_code_factor(&principal, FactorKind::Email, None, proof, &context)
        .await
    {
        Ok(()) => confirm_page(&state, FactorKind::Email, locale, &csrf, None, StatusCode::OK),
        Err(error) => presence_refused(&state, &principal, locale, &csrf, error).await,
    }
}

/// No `Debug`: it holds a password and a number.
#[derive(Deserialize)]
struct PhoneForm {
    #[serde(default)]
    phone_number: String,
    #[serde(default)]
    password: String,
}

/// Starts codes by SMS: a code goes to the number, then the confirm form.
async fn begin_sms(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<PhoneForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let proof = PasswordForm { password: fields.password }.proof();
    let phone = Some(fields.phone_number.as_str());
    match state
        .accounts
        .mfa
        .begin_code_factor(&principal, FactorKind::Sms, phone, proof, &context)
        .await
    {
        Ok(()) => confirm_page(&state, FactorKind::Sms, locale, &csrf, None, StatusCode::OK),
        Err(DomainError::Validation(_)) => {
            let error = Some("account.mfa.invalid_phone");
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            account_page(&state, &principal, locale, &csrf, status, error).await
        }
        Err(error) => presence_refused(&state, &principal, locale, &csrf, error).await,
    }
}

fn confirm_page(
    state: &AppState,
    kind: FactorKind,
    locale: Locale,
    csrf: &Csrf,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let view = context! {
        action => format!("/account/mfa/{}/confirm", kind.as_str()),
        kind => kind.as_str(),
        error => error,
    };
    state.pages.render_form(status, locale, csrf, "factor_confirm.html", view)
}

/// Confirms codes by email or SMS with the code that was sent.
async fn confirm_code_factor(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    axum::extract::Path(kind): axum::extract::Path<String>,
    form: PageForm<CodeForm>,
) -> Response {
    let Some(principal) = session else { return state.pages.redirect(SIGN_IN_FIRST) };
    let PageForm { locale, csrf, fields } = form;
    let kind = match FactorKind::parse(&kind) {
        Some(kind @ (FactorKind::Email | FactorKind::Sms)) => kind,
        _ => return state.pages.error_page(locale, ErrorPage::bad_request()),
    };
    match state.accounts.mfa.confirm_code_factor(&principal, kind, &fields.code, &context).await {
        Ok(codes) if codes.is_empty() => state.pages.redirect("/account"),
        Ok(codes) => backup_codes_page(&state, locale, codes),
        Err(DomainError::Mfa(problem)) => {
            let key = match problem {
                gatehouse_domain::MfaProblem::InvalidCode => "mfa.error.invalid_code",
                gatehouse_domain::MfaProblem::CodeExpired => "mfa.error.expired",
                gatehouse_domain::MfaProblem::AttemptsExhausted => "mfa.error.exhausted",
                _ => return state.pages.redirect("/account"),
            };
            confirm_page(&state, kind, locale, &csrf, Some(key), StatusCode::BAD_REQUEST)
        }
        Err(error) => state.pages.error_page(locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
pub(crate) struct ApiKeyForm {
    key_id: String,
}

/// Revokes one of the user's personal API keys (anyone else's is `not_found`).
async fn revoke_api_key(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<ApiKeyForm>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    match state.api_keys.revoke_personal(&principal, &form.fields.key_id, &context).await {
        Ok(()) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}

#[derive(Deserialize)]
pub(crate) struct InvitationAnswer {
    invitation_id: String,
    /// `accept` or `decline`.
    answer: String,
}

/// Accepts or declines one of the invitations waiting for the user's (verified) address.
async fn answer_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    BrowserSession(session): BrowserSession,
    form: PageForm<InvitationAnswer>,
) -> Response {
    let Some(principal) = session else {
        return state.pages.redirect("/login?return_to=%2Faccount");
    };
    let accept = match form.fields.answer.as_str() {
        "accept" => true,
        "decline" => false,
        _ => return state.pages.error_page(form.locale, ErrorPage::bad_request()),
    };
    match state
        .invitations
        .answer_by_id(&principal, &form.fields.invitation_id, accept, &context)
        .await
    {
        Ok(()) => state.pages.redirect("/account"),
        Err(error) => state.pages.error_page(form.locale, ErrorPage::from_domain(&error)),
    }
}
