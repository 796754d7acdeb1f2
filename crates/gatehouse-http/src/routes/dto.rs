//! Wire types shared by the route modules: how a user, a token set and a session look in JSON.
//! They mirror the domain views and carry the OpenAPI schemas.

use gatehouse_domain::sessions::SessionRecord;
use gatehouse_domain::sessions::Tokens;
use gatehouse_domain::sign_in::SignInOutcome;
use gatehouse_domain::users::UserView;
use gatehouse_domain::{DomainError, FieldIssue};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserResponse {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    #[schema(value_type = Object)]
    pub public_metadata: serde_json::Value,
    pub has_password: bool,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Admin API only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub private_metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_role: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_sign_in_attempts: Option<i64>,
}

impl From<UserView> for UserResponse {
    fn from(view: UserView) -> Self {
        let admin = view.admin;
        Self {
            id: view.id,
            email: view.email,
            email_verified: view.email_verified,
            username: view.username,
            first_name: view.first_name,
            last_name: view.last_name,
            image_url: view.image_url,
            public_metadata: view.public_metadata,
            has_password: view.has_password,
            last_sign_in_at: view.last_sign_in_at,
            created_at: view.created_at,
            updated_at: view.updated_at,
            private_metadata: admin.as_ref().map(|admin| admin.private_metadata.clone()),
            system_role: admin.as_ref().map(|admin| admin.system_role.clone()),
            suspended: admin.as_ref().map(|admin| admin.suspended),
            locked_until: admin.as_ref().map(|admin| admin.locked_until),
            failed_sign_in_attempts: admin.as_ref().map(|admin| admin.failed_sign_in_attempts),
        }
    }
}

/// The tokens answer of API.md.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokensResponse {
    pub access_token: String,
    /// `Bearer`, or `DPoP` when the session was opened with a DPoP proof (RFC 9449): its
    /// access tokens are then presented as `Authorization: DPoP` with a proof each time.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: String,
    pub user: UserResponse,
}

impl From<Tokens> for TokensResponse {
    fn from(tokens: Tokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            session_id: tokens.session_id,
            user: tokens.user.into(),
        }
    }
}

/// The sign-in answer when a second factor is needed (API.md).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MfaRequiredResponse {
    /// Always `true`.
    pub mfa_required: bool,
    /// For `POST /v1/auth/mfa/verify` (or, when `enrolment_required`, the enrolment calls).
    pub mfa_token: String,
    /// `totp`, `backup_code`, `email`, `sms`: what this user can answer with.
    pub methods: Vec<String>,
    /// Seconds the `mfa_token` lives.
    pub expires_in: i64,
    /// MFA is required and the user has no factor yet: enrol one through
    /// `POST /v1/auth/mfa/enrol/totp` first.
    pub enrolment_required: bool,
}

/// Tokens, or the second step.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum SignInResponse {
    Tokens(Box<TokensResponse>),
    MfaRequired(MfaRequiredResponse),
}

impl From<SignInOutcome> for SignInResponse {
    fn from(outcome: SignInOutcome) -> Self {
        match outcome {
            SignInOutcome::SignedIn(tokens) => SignInResponse::Tokens(Box::new((*tokens).into())),
            SignInOutcome::MfaRequired(challenge) => {
                SignInResponse::MfaRequired(MfaRequiredResponse {
                    mfa_required: true,
                    mfa_token: challenge.mfa_token,
                    methods: challenge.methods,
                    expires_in: challenge.expires_in,
                    enrolment_required: challenge.enrolment_required,
                })
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionResponse {
    pub id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    /// The session of the token that asked.
    pub current: bool,
}

impl SessionResponse {
    pub fn new(session: SessionRecord, current_id: &str) -> Self {
        Self {
            current: session.id == current_id,
            id: session.id,
            user_agent: session.user_agent,
            ip: session.ip,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
        }
    }
}

/// A cursor-paginated list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of a list (`limit` 1 to 100, default 50; `cursor` the `next_cursor` of
/// the previous page).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Where a page of a newest-first list stops: the last item's creation time and id, so the
/// next page starts right after it even when that item is gone by then.
pub(crate) fn cursor_of(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

/// The answer to a `cursor` that is not a `next_cursor` of ours.
pub(crate) fn invalid_cursor() -> DomainError {
    DomainError::Validation(vec![FieldIssue::new(
        "cursor",
        "invalid",
        "Use the next_cursor of a previous page.",
    )])
}

pub(crate) fn parse_cursor(text: &str) -> Option<(i64, &str)> {
    let (created_at, id) = text.split_once('.')?;
    Some((created_at.parse().ok()?, id))
}

impl<T> Page<T> {
    /// One page of a user's own short list, already read whole and ordered newest first
    /// (`created_at DESC, id DESC`): the items after `query.cursor`, `query.limit` of them.
    /// `key` gives an item's creation time and id. A cursor that does not parse answers
    /// `validation_failed` on `cursor`.
    pub fn of_newest_first<I>(
        items: Vec<I>,
        query: &PageQuery,
        key: impl Fn(&I) -> (i64, &str),
        map: impl FnMut(I) -> T,
    ) -> Result<Page<T>, DomainError> {
        let limit = query.limit.unwrap_or(50).clamp(1, 100) as usize;
        let after = match query.cursor.as_deref() {
            None => None,
            Some(text) => Some(parse_cursor(text).ok_or_else(invalid_cursor)?),
        };
        let mut rest: Vec<I> = items
            .into_iter()
            .filter(|item| after.is_none_or(|(time, id)| key(item) < (time, id)))
            .collect();
        let next_cursor = if rest.len() > limit {
            rest.truncate(limit);
            rest.last().map(|item| {
                let (created_at, id) = key(item);
                cursor_of(created_at, id)
            })
        } else {
            None
        };
        Ok(Page { data: rest.into_iter().map(map).collect(), next_cursor })
    }
}
