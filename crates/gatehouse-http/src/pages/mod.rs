//! The hosted browser pages (`/login`, `/signup`, `/logout`, `/mfa`, `/account`, the emailed-link pages,
//! `/forgot-password`; the OAuth pages `/consent`, `/device` and `/oauth2/end_session` live
//! with their endpoints under `routes/oauth`), one module each, and the extractors they share:
//! `request` ([`PageRequest`], [`PageForm`]: CSRF-checked forms) and `session`
//! ([`BrowserSession`], starting and ending a browser's session). What they are rendered
//! with (templates, cookies, CSRF keys) is `crate::browser`, below the state. The handlers
//! import those modules, never this one, which only routes them and re-exports the public
//! names (`gatehouse_http::pages::Pages`, ...).
//!
//! Invariant: every page answer carries the pages' CSP, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`; every POST form is checked by [`PageForm`] before its handler
//! runs; pages never print a secret and never echo a password.

mod account;
mod account_settings;
mod admin;
mod assets;
mod email_links;
mod federation_view;
mod forgot_password;
mod impersonation;
mod invitations;
mod linked_accounts;
mod login;
mod logout;
mod mfa;
mod passkey_list;
mod passkeys;
pub(crate) mod request;
pub(crate) mod session;
mod signup;
mod sso;

use axum::Router;
use axum::routing::{get, post};

pub use crate::browser::cookies::{CookieSpec, SESSION_COOKIE_PURPOSE, SessionCookie, read_cookie};
pub use crate::browser::csrf::{CSRF_FIELD, CSRF_PURPOSE, Csrf, CsrfKey};
pub use crate::browser::render::{Branding, BrowserKeys, Pages, is_hex_color};
pub use crate::browser::return_to::{
    DEFAULT_RETURN_TO, MAX_RETURN_TO_LENGTH, return_to_or_default, safe_return_to,
};
pub use crate::locale::Locale;
pub use request::{PageForm, PageRequest};
pub use session::{BrowserSession, end_browser_session};

use crate::state::AppState;

/// The pages' routes; merged into the router by `crate::router`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::show).post(login::submit))
        .route("/sso/{id}", get(sso::start))
        .route("/sso/{id}/callback", get(sso::callback).post(sso::posted_callback))
        .route("/signup", get(signup::show).post(signup::submit))
        .route("/logout", get(logout::show).post(logout::submit))
        .route("/invitations/accept", get(invitations::show).post(invitations::accept))
        .route("/invitations/decline", post(invitations::decline))
        .route("/account", get(account::show))
        .route(
            "/verify-email",
            get(email_links::show_verify_email).post(email_links::submit_verify_email),
        )
        .route("/forgot-password", get(forgot_password::show).post(forgot_password::submit))
        .route("/mfa", get(mfa::show))
        .route("/mfa/verify", post(mfa::verify))
        .route("/mfa/send-email", post(mfa::send_email))
        .route("/mfa/send-sms", post(mfa::send_sms))
        .route("/mfa/enrol", post(mfa::enrol))
        .route(
            "/reset-password",
            get(email_links::show_reset_password).post(email_links::submit_reset_password),
        )
        .route(
            "/change-email",
            get(email_links::show_change_email).post(email_links::submit_change_email),
        )
        .route(
            "/magic-link",
            get(email_links::show_magic_link).post(email_links::submit_magic_link),
        )
        .route(
            "/restore-account",
            get(email_links::show_restore_account).post(email_links::submit_restore_account),
        )
        .merge(account::routes())
        .merge(passkeys::routes())
        .merge(linked_accounts::routes())
        .merge(admin::routes())
        .merge(account_settings::routes())
        .route("/admin/users/{id}/impersonate", axum::routing::post(impersonation::start))
        .route("/account/impersonation/stop", axum::routing::post(impersonation::stop))
        .route("/assets/gatehouse.css", get(assets::stylesheet))
        .route("/assets/passkeys.js", get(assets::passkeys_script))
}
