//! The user as API callers see it: the public view, and the fields only admins see.

use serde::Serialize;

use crate::error::DomainError;
use crate::users::record::UserRecord;

/// The user as the first-party API shows it. Never holds the password hash; private metadata
/// and security state only appear in [`UserView::admin`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserView {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub public_metadata: serde_json::Value,
    pub has_password: bool,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminFields>,
}

/// Fields only admins see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminFields {
    pub private_metadata: serde_json::Value,
    pub system_role: Option<String>,
    pub suspended: bool,
    pub suspended_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub failed_sign_in_attempts: i64,
}

fn json_object(text: &str, user_id: &str) -> Result<serde_json::Value, DomainError> {
    serde_json::from_str(text)
        .map_err(|_| DomainError::Internal(format!("stored metadata of {user_id} is not JSON")))
}

impl UserView {
    pub(crate) fn from_record(
        user: &UserRecord,
        email: Option<String>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            id: user.id.clone(),
            email,
            email_verified: user.email_verified_at.is_some(),
            username: user.username.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            image_url: user.image_url.clone(),
            public_metadata: json_object(&user.public_metadata, &user.id)?,
            has_password: user.password_hash.is_some(),
            last_sign_in_at: user.last_sign_in_at,
            created_at: user.created_at,
            updated_at: user.updated_at,
            admin: None,
        })
    }

    pub(crate) fn with_admin_fields(mut self, user: &UserRecord) -> Result<Self, DomainError> {
        self.admin = Some(AdminFields {
            private_metadata: json_object(&user.private_metadata, &user.id)?,
            system_role: user.system_role.clone(),
            suspended: user.suspended_at.is_some(),
            suspended_at: user.suspended_at,
            locked_until: user.locked_until,
            failed_sign_in_attempts: user.failed_sign_in_attempts,
        });
        Ok(self)
    }
}
