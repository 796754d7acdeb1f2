//! `/v1/organizations*`: organizations, their members and roles, for signed-in users. Every
//! operation checks a permission of the caller's role (see `gatehouse_domain::organizations`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use gatehouse_domain::DomainError;
use gatehouse_domain::organizations::{
    InvitationView, ListCursor, MemberRecord, MembershipRecord, NewOrganization,
    OrganizationRecord, OrganizationUpdate, OrganizationView, RoleDefinition, RoleRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{Page, PageQuery, UserResponse, cursor_of, invalid_cursor, parse_cursor};
use super::me::present;
use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/organizations", get(my_organizations).post(create_organization))
        .route(
            "/v1/organizations/{id}",
            get(get_organization).patch(update_organization).delete(delete_organization),
        )
        .route("/v1/organizations/{id}/members", get(list_members))
        .route(
            "/v1/organizations/{id}/members/{user_id}",
            patch(set_member_role).delete(remove_member),
        )
        .route("/v1/organizations/{id}/leave", post(leave_organization))
        .route("/v1/organizations/{id}/roles", get(list_roles).post(create_role))
        .route("/v1/organizations/{id}/roles/{key}", patch(update_role).delete(delete_role))
        .route("/v1/organizations/{id}/invitations", get(list_invitations).post(invite))
        .route(
            "/v1/organizations/{id}/invitations/{invitation_id}",
            axum::routing::delete(revoke_invitation),
        )
        .route("/v1/invitations/accept", post(accept_invitation))
        .route("/v1/invitations/decline", post(decline_invitation))
        .route("/v1/me/invitations", get(my_invitations))
        .route("/v1/me/invitations/{id}/accept", post(accept_my_invitation))
        .route("/v1/me/invitations/{id}/decline", post(decline_my_invitation))
        .route("/v1/me/organization", post(switch_organization))
}

/// An organization. `private_metadata` only for holders of `org:update`; `role` and
/// `permissions` are the caller's.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrganizationResponse {
    id: String,
    name: String,
    slug: String,
    logo_url: Option<String>,
    #[schema(value_type = Object)]
    public_metadata: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    private_metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<String>>,
    created_at: i64,
    updated_at: i64,
}

fn json_object(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::json!({}))
}

impl OrganizationResponse {
    pub(crate) fn of(record: OrganizationRecord, show_private: bool) -> Self {
        Self {
            public_metadata: json_object(&record.public_metadata),
            private_metadata: show_private.then(|| json_object(&record.private_metadata)),
            id: record.id,
            name: record.name,
            slug: record.slug,
            logo_url: record.logo_url,
            role: None,
            permissions: None,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl From<OrganizationView> for OrganizationResponse {
    fn from(view: OrganizationView) -> Self {
        let mut answer = OrganizationResponse::of(view.organization, view.show_private);
        answer.role = view.role;
        answer.permissions = Some(view.permissions);
        answer
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrganizationRequest {
    name: String,
    /// Lowercase letters and digits, words joined by hyphens (2–48 characters); unique.
    slug: String,
    logo_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    public_metadata: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    private_metadata: Option<serde_json::Value>,
}

impl From<CreateOrganizationRequest> for NewOrganization {
    fn from(body: CreateOrganizationRequest) -> Self {
        NewOrganization {
            name: body.name,
            slug: body.slug,
            logo_url: body.logo_url,
            public_metadata: body.public_metadata,
            private_metadata: body.private_metadata,
        }
    }
}

/// Creates an organization; the caller becomes its `owner`.
#[utoipa::path(post, path = "/v1/organizations", tag = "organizations", security(("bearer" = [])), request_body = CreateOrganizationRequest, responses(
    (status = 201, body = OrganizationResponse),
    (status = 409, description = "slug_taken", body = crate::error::Problem)))]
pub(crate) async fn create_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<CreateOrganizationRequest>,
) -> Result<Response, ApiError> {
    let view = state.organizations.create(&principal, body.into(), &context).await?;
    Ok((StatusCode::CREATED, Json(OrganizationResponse::from(view))).into_response())
}

/// The caller's organizations, newest membership first, with their role in each (also for an
/// API key with `organizations:read`).
#[utoipa::path(get, path = "/v1/organizations", tag = "organizations", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<OrganizationResponse>),
    (status = 403, description = "insufficient_scope (an API key without organizations:read)", body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn my_organizations(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<OrganizationResponse>>, ApiError> {
    let user = caller.user_with_scope("organizations:read")?;
    let mut views = state.organizations.mine(&user.id).await?;
    // A key acting in one organization sees that one only.
    if let crate::auth::Caller::ApiKey(key) = &caller
        && let Some(acting) = &key.key.acting_organization_id
    {
        views.retain(|view| &view.organization.id == acting);
    }
    Ok(Json(Page::of_newest_first(
        views,
        &query,
        |view| (view.organization.created_at, view.organization.id.as_str()),
        Into::into,
    )?))
}

/// One organization (`org:read`; an API key needs `organizations:read`); outsiders get 404.
#[utoipa::path(get, path = "/v1/organizations/{id}", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrganizationResponse),
    (status = 403, description = "permission_denied, insufficient_scope (an API key without organizations:read)", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn get_organization(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let user = caller.user_in_organization("organizations:read", &id)?;
    Ok(Json(state.organizations.get(&user.id, &id).await?.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateOrganizationRequest {
    name: Option<String>,
    slug: Option<String>,
    /// `null` removes the logo.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    logo_url: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    public_metadata: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    private_metadata: Option<serde_json::Value>,
}

/// Changes name, slug, logo or metadata (`org:update`).
#[utoipa::path(patch, path = "/v1/organizations/{id}", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = UpdateOrganizationRequest, responses((status = 200, body = OrganizationResponse),
    (status = 403, description = "permission_denied, insufficient_scope (an API key without organizations:write)", body = crate::error::Problem), (status = 404, body = crate::error::Problem),
    (status = 409, description = "slug_taken", body = crate::error::Problem)))]
pub(crate) async fn update_organization(
    State(state): State<AppState>,
    Client(context): Client,
    caller: crate::auth::Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateOrganizationRequest>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let user = caller.user_in_organization("organizations:write", &id)?;
    let change = OrganizationUpdate {
        name: body.name,
        slug: body.slug,
        logo_url: body.logo_url,
        public_metadata: body.public_metadata,
        private_metadata: body.private_metadata,
    };
    Ok(Json(state.organizations.update(&user.id, &id, change, &context).await?.into()))
}

/// Deletes the organization (`org:delete`, owners only by default; recent authentication).
#[utoipa::path(delete, path = "/v1/organizations/{id}", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 403, description = "permission_denied, reauthentication_required", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn delete_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.organizations.delete(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member: the account and the role.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MemberResponse {
    user: UserResponse,
    role: String,
    joined_at: i64,
    updated_at: i64,
}

pub(crate) fn member_page(
    state: &AppState,
    members: Vec<MemberRecord>,
    limit: u32,
) -> Result<Page<MemberResponse>, DomainError> {
    let mut data = Vec::with_capacity(members.len());
    let more = members.len() > limit as usize;
    for member in members.into_iter().take(limit as usize) {
        let view = state.accounts.directory.view(&member.user)?;
        data.push(MemberResponse {
            user: view.into(),
            role: member.membership.role,
            joined_at: member.membership.created_at,
            updated_at: member.membership.updated_at,
        });
    }
    let next_cursor =
        if more { data.last().map(|last| cursor_of(last.joined_at, &last.user.id)) } else { None };
    Ok(Page { data, next_cursor })
}

/// `?limit=&cursor=` as a store cursor and the page size (one more is read to know whether a
/// next page exists).
pub(crate) fn page_bounds(query: &PageQuery) -> Result<(Option<ListCursor>, u32), DomainError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 100);
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(text) => {
            let (created_at, id) = parse_cursor(text).ok_or_else(invalid_cursor)?;
            Some(ListCursor { created_at, id: id.to_owned() })
        }
    };
    Ok((cursor, limit))
}

/// Members newest first, a page at a time (`members:read`).
#[utoipa::path(get, path = "/v1/organizations/{id}/members", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<MemberResponse>), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem), (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<MemberResponse>>, ApiError> {
    let (cursor, limit) = page_bounds(&query)?;
    let members = state.organizations.members(&principal, &id, cursor.as_ref(), limit + 1).await?;
    Ok(Json(member_page(&state, members, limit)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleRequest {
    /// `owner`, `admin`, `member`, or a custom role's key.
    role: String,
}

/// A membership.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MembershipResponse {
    organization_id: String,
    user_id: String,
    role: String,
    joined_at: i64,
    updated_at: i64,
}

impl From<MembershipRecord> for MembershipResponse {
    fn from(record: MembershipRecord) -> Self {
        Self {
            organization_id: record.organization_id,
            user_id: record.user_id,
            role: record.role,
            joined_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// Changes a member's role (`members:manage`; nobody grants what they do not hold, only holders
/// of `org:delete` grant `owner`, the last owner cannot be demoted).
#[utoipa::path(patch, path = "/v1/organizations/{id}/members/{user_id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), request_body = RoleRequest, responses(
    (status = 200, body = MembershipResponse), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem), (status = 409, description = "last_owner", body = crate::error::Problem)))]
pub(crate) async fn set_member_role(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<Json<MembershipResponse>, ApiError> {
    let membership = state
        .organizations
        .set_member_role(&principal, &id, &user_id, &body.role, &context)
        .await?;
    Ok(Json(membership.into()))
}

/// Removes a member (`members:manage`; not the last owner).
#[utoipa::path(delete, path = "/v1/organizations/{id}/members/{user_id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem),
    (status = 409, description = "last_owner", body = crate::error::Problem)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.organizations.remove_member(&principal, &id, &user_id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves the organization (not its last owner).
#[utoipa::path(post, path = "/v1/organizations/{id}/leave", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::Problem), (status = 409, description = "last_owner", body = crate::error::Problem)))]
pub(crate) async fn leave_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.organizations.leave(&principal, &id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A role: built-in (`owner`, `admin`, `member`) or custom.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RoleResponse {
    key: String,
    name: String,
    permissions: Vec<String>,
    built_in: bool,
}

impl From<RoleRecord> for RoleResponse {
    fn from(role: RoleRecord) -> Self {
        Self {
            built_in: gatehouse_domain::organizations::built_in_permissions(&role.key).is_some(),
            key: role.key,
            name: role.name,
            permissions: role.permissions.into_iter().collect(),
        }
    }
}

/// The organization's roles with their permissions (`members:read`).
#[utoipa::path(get, path = "/v1/organizations/{id}/roles", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Page<RoleResponse>), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn list_roles(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Page<RoleResponse>>, ApiError> {
    let roles = state.organizations.roles(&principal, &id).await?;
    Ok(Json(Page { data: roles.into_iter().map(Into::into).collect(), next_cursor: None }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRoleRequest {
    /// Lowercase letters, digits, `_`, `-` (not a built-in role's key).
    key: String,
    name: String,
    /// `resource:action` strings.
    permissions: Vec<String>,
}

/// Creates a custom role (`roles:manage`; no system permission the caller lacks).
#[utoipa::path(post, path = "/v1/organizations/{id}/roles", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = CreateRoleRequest, responses((status = 201, body = RoleResponse),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem),
    (status = 409, description = "conflict (key in use)", body = crate::error::Problem)))]
pub(crate) async fn create_role(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateRoleRequest>,
) -> Result<Response, ApiError> {
    let definition = RoleDefinition { name: body.name, permissions: body.permissions };
    let role =
        state.organizations.create_role(&principal, &id, &body.key, definition, &context).await?;
    Ok((StatusCode::CREATED, Json(RoleResponse::from(role))).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRoleRequest {
    name: String,
    permissions: Vec<String>,
}

/// Redefines a custom role (`roles:manage`); built-in roles answer 409.
#[utoipa::path(patch, path = "/v1/organizations/{id}/roles/{key}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("key" = String, Path)), request_body = UpdateRoleRequest, responses(
    (status = 200, body = RoleResponse), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem), (status = 409, description = "conflict (built-in role)", body = crate::error::Problem)))]
pub(crate) async fn update_role(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateRoleRequest>,
) -> Result<Json<RoleResponse>, ApiError> {
    let definition = RoleDefinition { name: body.name, permissions: body.permissions };
    let role = state.organizations.update_role(&principal, &id, &key, definition, &context).await?;
    Ok(Json(role.into()))
}

/// Deletes a custom role no member holds (`roles:manage`).
#[utoipa::path(delete, path = "/v1/organizations/{id}/roles/{key}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("key" = String, Path)), responses((status = 204),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem),
    (status = 409, description = "conflict (built-in, or held by members)", body = crate::error::Problem)))]
pub(crate) async fn delete_role(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.organizations.delete_role(&principal, &id, &key, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation (never its token: that travels only by email).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvitationResponse {
    id: String,
    organization_id: String,
    email: String,
    role: String,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    status: &'static str,
    created_at: i64,
    expires_at: i64,
}

impl From<InvitationView> for InvitationResponse {
    fn from(view: InvitationView) -> Self {
        Self {
            id: view.id,
            organization_id: view.organization_id,
            email: view.email,
            role: view.role,
            status: view.status,
            created_at: view.created_at,
            expires_at: view.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteRequest {
    email: String,
    /// `admin`, `member`, a custom role's key, or `owner` (for holders of `org:delete`).
    role: String,
}

/// Invites an address (`invitations:manage`; the grant rules apply to the role). The link goes
/// by email, valid 7 days; a pending invitation of the same address is replaced.
#[utoipa::path(post, path = "/v1/organizations/{id}/invitations", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = InviteRequest, responses((status = 201, body = InvitationResponse),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn invite(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> Result<Response, ApiError> {
    let view = state.invitations.invite(&principal, &id, &body.email, &body.role, &context).await?;
    Ok((StatusCode::CREATED, Json(InvitationResponse::from(view))).into_response())
}

/// The organization's invitations, newest first (`invitations:manage`).
#[utoipa::path(get, path = "/v1/organizations/{id}/invitations", tag = "organizations", security(("bearer" = [])), params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<InvitationResponse>), (status = 403, description = "permission_denied", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 422, description = "validation_failed (cursor)", body = crate::error::Problem)))]
pub(crate) async fn list_invitations(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<InvitationResponse>>, ApiError> {
    let views = state.invitations.list(&principal, &id).await?;
    Ok(Json(Page::of_newest_first(
        views,
        &query,
        |view| (view.created_at, view.id.as_str()),
        Into::into,
    )?))
}

/// Revokes a pending invitation (`invitations:manage`).
#[utoipa::path(delete, path = "/v1/organizations/{id}/invitations/{invitation_id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path), ("invitation_id" = String, Path)), responses((status = 204),
    (status = 403, description = "permission_denied", body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub(crate) async fn revoke_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path((id, invitation_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.invitations.revoke(&principal, &id, &invitation_id, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitationTokenRequest {
    /// The token of the emailed link.
    token: String,
}

/// Accepts an invitation: the signed-in user, whose address must be the invited one, joins
/// with its role (the token proves the mailbox: an unverified address becomes verified).
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "organizations", security(("bearer" = [])), request_body = InvitationTokenRequest,
    responses((status = 200, body = MembershipResponse),
    (status = 400, description = "invalid_token, token_used, token_expired", body = crate::error::Problem),
    (status = 403, description = "forbidden (another address)", body = crate::error::Problem),
    (status = 409, description = "conflict (a member already)", body = crate::error::Problem)))]
pub(crate) async fn accept_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<InvitationTokenRequest>,
) -> Result<Json<MembershipResponse>, ApiError> {
    Ok(Json(state.invitations.accept(&principal, &body.token, &context).await?.into()))
}

/// Declines an invitation (the signed-in user it was sent to).
#[utoipa::path(post, path = "/v1/invitations/decline", tag = "organizations", security(("bearer" = [])), request_body = InvitationTokenRequest,
    responses((status = 204), (status = 400, description = "invalid_token, token_used, token_expired", body = crate::error::Problem),
    (status = 403, description = "forbidden (another address)", body = crate::error::Problem)))]
pub(crate) async fn decline_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<InvitationTokenRequest>,
) -> Result<StatusCode, ApiError> {
    state.invitations.decline(&principal, &body.token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation waiting for the signed-in user's address.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MyInvitationResponse {
    id: String,
    organization_id: String,
    organization_name: String,
    role: String,
    created_at: i64,
    expires_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MyInvitationList {
    data: Vec<MyInvitationResponse>,
    /// Always null: at most 50 pending invitations are listed.
    next_cursor: Option<String>,
}

/// The pending invitations sent to the signed-in user's address, newest first.
#[utoipa::path(get, path = "/v1/me/invitations", tag = "organizations", security(("bearer" = [])),
    responses((status = 200, body = MyInvitationList), (status = 401, body = crate::error::Problem),
    (status = 403, body = crate::error::Problem)))]
pub(crate) async fn my_invitations(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<MyInvitationList>, ApiError> {
    let data = state
        .invitations
        .pending_for_me(&principal)
        .await?
        .into_iter()
        .map(|(view, organization_name)| MyInvitationResponse {
            id: view.id,
            organization_id: view.organization_id,
            organization_name,
            role: view.role,
            created_at: view.created_at,
            expires_at: view.expires_at,
        })
        .collect();
    Ok(Json(MyInvitationList { data, next_cursor: None }))
}

/// Accepts one of the user's pending invitations by its id (no token: the user's verified
/// address is the invited one). 404 for another address's or an unknown invitation.
#[utoipa::path(post, path = "/v1/me/invitations/{id}/accept", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 400, description = "token_used, token_expired", body = crate::error::Problem),
    (status = 401, body = crate::error::Problem),
    (status = 403, description = "forbidden (the address is not verified)", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, description = "conflict (a member already)", body = crate::error::Problem)))]
pub(crate) async fn accept_my_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.invitations.answer_by_id(&principal, &id, true, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines one of the user's pending invitations by its id.
#[utoipa::path(post, path = "/v1/me/invitations/{id}/decline", tag = "organizations", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 400, description = "token_used, token_expired", body = crate::error::Problem),
    (status = 401, body = crate::error::Problem),
    (status = 403, description = "forbidden (the address is not verified)", body = crate::error::Problem),
    (status = 404, body = crate::error::Problem)))]
pub(crate) async fn decline_my_invitation(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.invitations.answer_by_id(&principal, &id, false, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchRequest {
    /// An organization the caller is a member of, or `null` for none.
    organization_id: Option<String>,
    /// The session's current refresh token: when given it is spent and the answer carries its
    /// successor — a whole tokens answer. An access token alone never mints a refresh token.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The claims the session's access tokens carry for its active organization.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrganizationClaimsResponse {
    org_id: String,
    org_slug: String,
    org_role: String,
    org_permissions: Vec<String>,
}

/// The tokens answer of the session with its new active organization.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SwitchResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    /// The session's next refresh token, when the request carried its current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    session_id: String,
    user: UserResponse,
    /// `null` when no organization is active.
    organization: Option<OrganizationClaimsResponse>,
}

/// Chooses the session's active organization (or none): from now on its access tokens carry
/// `org_id`, `org_slug`, `org_role` and `org_permissions`, read again at every refresh (so a
/// removal or a role change shows at the next one). The answer is a tokens answer with a new
/// access token; with the session's `refresh_token` in the body that token is rotated and the
/// answer carries its successor, else the session's refresh token stays valid (an access token
/// alone never mints a refresh token: a leaked access token must not outlive its minutes).
#[utoipa::path(post, path = "/v1/me/organization", tag = "organizations", security(("bearer" = [])), request_body = SwitchRequest,
    responses((status = 200, body = SwitchResponse),
        (status = 401, description = "the refresh token is not this session's current one (`invalid_grant`)", body = crate::error::Problem),
        (status = 404, description = "not a member", body = crate::error::Problem)))]
pub(crate) async fn switch_organization(
    State(state): State<AppState>,
    Client(context): Client,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<SwitchRequest>,
) -> Result<Json<SwitchResponse>, ApiError> {
    let (access_token, expires_in, claims) =
        state.organizations.switch(&principal, body.organization_id.as_deref(), &context).await?;
    let organization = claims.map(|claims| OrganizationClaimsResponse {
        org_id: claims.id,
        org_slug: claims.slug,
        org_role: claims.role,
        org_permissions: claims.permissions,
    });
    // The switch is written; the rotation reads the session as it now stands, so the access
    // token it answers carries the new organization too.
    if let Some(refresh_token) = body.refresh_token.as_deref() {
        let tokens = state
            .accounts
            .sessions
            .refresh_own(&principal.session.id, refresh_token, &context)
            .await?;
        return Ok(Json(SwitchResponse {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_in: tokens.expires_in,
            refresh_token: Some(tokens.refresh_token),
            session_id: tokens.session_id,
            user: tokens.user.into(),
            organization,
        }));
    }
    Ok(Json(SwitchResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        session_id: principal.session.id.clone(),
        user: state.accounts.registration.me(&principal.user)?.into(),
        organization,
    }))
}
