//! The OpenAPI 3.1 description of the first-party, admin and OAuth API, served at
//! `/openapi.json`. First-party and admin operations are described by their handlers'
//! annotations; the OAuth operations by `oauth`'s table; the error answers every operation
//! shares are added by `errors`.

mod errors;
mod oauth;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::routes::{
    admin, admin_audit, admin_clients, admin_deliveries, admin_identity_providers, admin_keys,
    admin_organizations, admin_overview, admin_registration_tokens, admin_resource_servers,
    admin_sessions, admin_signing_keys, admin_webhooks, api_keys, auth, email_links, federation,
    me, me_data, me_mfa, mfa, operations, organizations, passkeys, well_known,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "Self-hostable identity server: first-party and admin API."),
    paths(
        openapi_document, operations::healthz, operations::readyz, operations::metrics, well_known::jwks,
        auth::sign_up, auth::sign_in, auth::refresh, auth::sign_out, auth::password_policy,
        email_links::verify_email, email_links::resend_verification, email_links::forgot_password,
        email_links::reset_password, email_links::request_magic_link, email_links::magic_link_verify,
        me::me, me::update_me, me::change_password, me::sessions, me::revoke_session,
        admin::list_users, admin::create_user, admin::get_user, admin::update_user, admin::delete_user,
        admin::suspend_user, admin::unsuspend_user, admin::unlock_user, admin::send_password_reset, admin_audit::audit_log,
        admin_audit::export_audit_log,
        admin_clients::create_client, admin_clients::list_clients, admin_clients::get_client,
        admin_clients::delete_client, admin_clients::rotate_secret, admin_clients::update_client,
        admin_resource_servers::create, admin_resource_servers::list, admin_resource_servers::read,
        admin_resource_servers::update, admin_resource_servers::delete,
        admin_registration_tokens::create,
        admin_deliveries::list_deliveries, admin_deliveries::delivery_attempts,
        admin_deliveries::retry_delivery,
        admin_webhooks::create_webhook, admin_webhooks::list_webhooks, admin_webhooks::get_webhook,
        admin_webhooks::update_webhook, admin_webhooks::delete_webhook, admin_webhooks::rotate_secret,
        admin_webhooks::test_webhook, admin_webhooks::list_webhook_deliveries,
        mfa::verify, mfa::send_code, mfa::begin_required_totp, mfa::confirm_required_totp, mfa::reauthenticate, mfa::send_reauthentication_code,
        me_mfa::my_mfa, me_mfa::begin_totp, me_mfa::confirm_totp, me_mfa::remove_totp,
        me_mfa::regenerate_backup_codes, me_mfa::begin_email, me_mfa::confirm_email,
        me_mfa::remove_email, me_mfa::begin_sms, me_mfa::confirm_sms, me_mfa::remove_sms,
        me_mfa::trusted_devices, me_mfa::revoke_trusted_device, me_mfa::admin_user_mfa,
        me_mfa::admin_reset_mfa,
        passkeys::list_passkeys, passkeys::begin_registration, passkeys::finish_registration,
        passkeys::rename_passkey, passkeys::remove_passkey, passkeys::begin_sign_in,
        passkeys::finish_sign_in, passkeys::begin_step_up, passkeys::begin_sign_up,
        passkeys::finish_sign_up,
        organizations::create_organization, organizations::my_organizations,
        organizations::get_organization, organizations::update_organization,
        organizations::delete_organization, organizations::list_members,
        organizations::set_member_role, organizations::remove_member,
        organizations::leave_organization, organizations::list_roles, organizations::create_role,
        organizations::update_role, organizations::delete_role, organizations::invite,
        organizations::list_invitations, organizations::revoke_invitation,
        organizations::accept_invitation, organizations::decline_invitation,
        organizations::my_invitations, organizations::accept_my_invitation, organizations::decline_my_invitation,
        organizations::switch_organization,
        admin_organizations::list_organizations, admin_organizations::get_organization,
        admin_organizations::create_organization, admin_organizations::delete_organization,
        admin_organizations::list_members, admin_organizations::add_member,
        api_keys::create_my_key, api_keys::list_my_keys, api_keys::revoke_my_key,
        api_keys::create_organization_key, api_keys::list_organization_keys,
        api_keys::revoke_organization_key, api_keys::admin_list_keys, api_keys::admin_revoke_key,
        federation::list_providers, federation::list_identities, federation::unlink_identity,
        admin_identity_providers::list_providers, admin_identity_providers::get_provider,
        admin_identity_providers::create_provider, admin_identity_providers::update_provider,
        admin_identity_providers::delete_provider, admin_identity_providers::upstream_token, admin_overview::stats,
        admin_sessions::list_sessions, admin_sessions::revoke_all, admin_sessions::revoke_one,
        admin_sessions::impersonate,
        me_data::export, me_data::delete_me, me_data::request_email_change,
        me_data::confirm_email_change, me_data::list_consents, me_data::revoke_consent,
        me_data::restore_account,
        admin_signing_keys::list_signing_keys, admin_signing_keys::rotate_signing_key,
        admin_keys::list_admin_keys, admin_keys::revoke_admin_key,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth, &OAuthOperations),
    tags((name = "operations", description = "Health, readiness and metrics"),
         (name = "auth", description = "Sign-up, sign-in, refresh, sign-out, email verification, password reset, magic links"),
         (name = "me", description = "The signed-in user"),
         (name = "organizations", description = "Organizations, members and roles"),
         (name = "admin", description = "Admin API (admin API key or admin user token)"),
         (name = "oauth", description = "OAuth 2.1 / OpenID Connect"))
)]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    let document = std::sync::Arc::new(ApiDoc::openapi());
    Router::new()
        .route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)] // Documents the route above; utoipa reads the signature.
async fn openapi_document() {}

/// Adds the OAuth operations, then the error answers every operation shares.
struct OAuthOperations;

impl utoipa::Modify for OAuthOperations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        oauth::add_operations(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert("OAuthError".to_owned(), oauth::error_schema().into());
        errors::add_common_errors(openapi);
    }
}

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}
