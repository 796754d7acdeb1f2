//! `/v1/admin/organizations`: every organization, for admins — list with search, read, create
//! (with an owner), delete, list and add members.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::dto::{Page, PageQuery, cursor_of};
use gatehouse_domain::organizations::NewOrganization;

use super::organizations::{
    MemberResponse, MembershipResponse, OrganizationResponse, member_page, page_bounds,
};
use crate::auth::Admin;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/organizations", get(list_organizations).post(create_organization))
        .route("/v1/admin/organizations/{id}", get(get_organization).delete(delete_organization))
        .route("/v1/admin/organizations/{id}/members", get(list_members).post(add_member))
}

/// `?search=&limit=&cursor=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganizationQuery {
    /// Part of the name (any case) or of the slug.
    search: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Organizations newest first, a page at a time.
#[utoipa::path(get, path = "/v1/admin/organizations", tag = "admin", security(("bearer" = [])), params(OrganizationQuery),
    responses((status = 200, body = Page<OrganizationResponse>),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_organizations(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiQuery(query): ApiQuery<OrganizationQuery>,
) -> Result<Json<Page<OrganizationResponse>>, ApiError> {
    let (cursor, limit) =
        page_bounds(&PageQuery { limit: query.limit, cursor: query.cursor.clone() })?;
    let mut found = state
        .admin_organizations
        .list(&admin, query.search.as_deref(), cursor.as_ref(), limit + 1)
        .await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|last| cursor_of(last.created_at, &last.id))
    } else {
        None
    };
    let data = found.into_iter().map(|record| OrganizationResponse::of(record, true)).collect();
    Ok(Json(Page { data, next_cursor }))
}

/// One organization, private metadata included.
#[utoipa::path(get, path = "/v1/admin/organizations/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrganizationResponse), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_organization(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let record = state.admin_organizations.get(&admin, &id).await?;
    Ok(Json(OrganizationResponse::of(record, true)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminCreateOrganizationRequest {
    /// The user who becomes its `owner`.
    owner_user_id: String,
    name: String,
    slug: String,
    logo_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    public_metadata: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    private_metadata: Option<serde_json::Value>,
}

/// Creates an organization owned by a user.
#[utoipa::path(post, path = "/v1/admin/organizations", tag = "admin", security(("bearer" = [])), request_body = AdminCreateOrganizationRequest,
    responses((status = 201, body = OrganizationResponse), (status = 409, description = "slug_taken", body = crate::error::Problem)))]
pub(crate) async fn create_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<AdminCreateOrganizationRequest>,
) -> Result<Response, ApiError> {
    let record = state
        .admin_organizations
        .create(
            &admin,
            &body.owner_user_id,
            NewOrganization {
                name: body.name,
                slug: body.slug,
                logo_url: body.logo_url,
                public_metadata: body.public_metadata,
                private_metadata: body.private_metadata,
            },
            &context,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(OrganizationResponse::of(record, true))).into_response())
}

/// Deletes an organization with its memberships and roles.
#[utoipa::path(delete, path = "/v1/admin/organizations/{id}", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.admin_organizations.delete(&admin, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members newest first, a page at a time.
#[utoipa::path(get, path = "/v1/admin/organizations/{id}/members", tag = "admin", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<MemberResponse>), (status = 404, body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<MemberResponse>>, ApiError> {
    let (cursor, limit) = page_bounds(&query)?;
    let members =
        state.admin_organizations.members(&admin, &id, cursor.as_ref(), limit + 1).await?;
    Ok(Json(member_page(&state, members, limit)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMemberRequest {
    user_id: String,
    /// `owner`, `admin`, `member`, or a custom role's key.
    role: String,
}

/// Adds a user to an organization.
#[utoipa::path(post, path = "/v1/admin/organizations/{id}/members", tag = "admin", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = AddMemberRequest, responses((status = 201, body = MembershipResponse), (status = 404, body = crate::error::Problem),
    (status = 409, description = "conflict (a member already)", body = crate::error::Problem)))]
pub(crate) async fn add_member(
    State(state): State<AppState>,
    Client(context): Client,
    Admin(admin): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<Response, ApiError> {
    let membership = state
        .admin_organizations
        .add_member(&admin, &id, &body.user_id, &body.role, &context)
        .await?;
    Ok((StatusCode::CREATED, Json(MembershipResponse::from(membership))).into_response())
}
