//! `/v1/admin/users*`: users, for an admin API key or an admin user's token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use gatehouse_domain::admin_users::{AdminUserUpdate, NewUserByAdmin};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::dto::{Page, UserResponse};
use super::me::present;
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/users", get(list_users).post(create_user))
        .route("/v1/admin/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v1/admin/users/{id}/suspend", post(suspend_user))
        .route("/v1/admin/users/{id}/unsuspend", post(unsuspend_user))
        .route("/v1/admin/users/{id}/unlock", post(unlock_user))
        .route("/v1/admin/users/{id}/password-reset", post(send_password_reset))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListUsersQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    /// Exact address (emails are encrypted; search uses their blind index).
    email: Option<String>,
}

/// Users in creation order.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])), params(ListUsersQuery),
    responses((status = 200, body = Page<UserResponse>), (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> Result<Json<Page<UserResponse>>, ApiError> {
    let page = state
        .accounts
        .admin_users
        .list(&admin, query.cursor, query.limit.unwrap_or(50), query.email.as_deref())
        .await?;
    Ok(Json(Page {
        data: page.users.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    email: String,
    password: Option<String>,
    /// Import a hash from another system (bcrypt, scrypt, PBKDF2, Django, foreign Argon2);
    /// it is upgraded to Argon2id at the user's next sign-in.
    password_hash: Option<String>,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    admin: bool,
}

#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    let request = NewUserByAdmin {
        email: body.email,
        password: body.password,
        password_hash: body.password_hash,
        username: body.username,
        first_name: body.first_name,
        last_name: body.last_name,
        email_verified: body.email_verified,
        admin: body.admin,
    };
    let user = state.accounts.admin_users.create(&admin, request, &context).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.accounts.admin_users.get(&admin, &id).await?.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    image_url: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    public_metadata: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    private_metadata: Option<serde_json::Value>,
    email_verified: Option<bool>,
    admin: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateUserRequest, responses((status = 200, body = UserResponse), (status = 404, body = crate::error::Problem),
    (status = 409, description = "email_taken, username_taken", body = crate::error::Problem)))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let update = AdminUserUpdate {
        username: body.username,
        first_name: body.first_name,
        last_name: body.last_name,
        image_url: body.image_url,
        public_metadata: body.public_metadata,
        private_metadata: body.private_metadata,
        email_verified: body.email_verified,
        admin: body.admin,
    };
    Ok(Json(state.accounts.admin_users.update(&admin, &id, update, &context).await?.into()))
}

#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.admin_users.delete(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Suspends the user and revokes every session: their tokens stop working at once.
#[utoipa::path(post, path = "/v1/admin/users/{id}/suspend", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserResponse)))]
pub(crate) async fn suspend_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.accounts.admin_users.set_suspended(&admin, &id, true, &context).await?.into()))
}

#[utoipa::path(post, path = "/v1/admin/users/{id}/unsuspend", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserResponse)))]
pub(crate) async fn unsuspend_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.accounts.admin_users.set_suspended(&admin, &id, false, &context).await?.into()))
}

/// Clears a lockout.
#[utoipa::path(post, path = "/v1/admin/users/{id}/unlock", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = UserResponse)))]
pub(crate) async fn unlock_user(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(state.accounts.admin_users.unlock(&admin, &id, &context).await?.into()))
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct PasswordResetSent {
    /// A reset link went to the user's address (only the user receives it).
    sent: bool,
}

/// Emails the user a password-reset link (the "forgot password" email; the link is never in
/// an answer). Audited `user.password_reset_requested` with `by: admin`.
#[utoipa::path(post, path = "/v1/admin/users/{id}/password-reset", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 202, body = PasswordResetSent),
    (status = 422, description = "validation_failed: the account has no email address", body = crate::error::Problem),
    (status = 401, body = crate::error::Problem), (status = 403, description = "forbidden, account_suspended", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn send_password_reset(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<PasswordResetSent>), ApiError> {
    state.accounts.email_links.admin_send_password_reset(&admin, &id, &context).await?;
    Ok((StatusCode::ACCEPTED, Json(PasswordResetSent { sent: true })))
}
