//! `OrganizationStore` on SQL: `organizations`, `organization_members`, `organization_roles`.
//! A membership change that could remove the last owner first touches the organization's row,
//! which locks it (PostgreSQL; SQLite writers are serialised anyway), then decides by counting
//! owners in the same transaction.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::organizations::built_in_permissions;
use gatehouse_domain::organizations::{
    AcceptOutcome, InvitationRecord, InvitationStore, ListCursor, MemberRecord, MembershipOutcome,
    MembershipRecord, OWNER, OrganizationRecord, OrganizationStore, RoleRecord,
};
use gatehouse_domain::store::Conflict;
use gatehouse_domain::tokens::{OrganizationChoice, OrganizationClaimSource, OrganizationClaims};
use gatehouse_domain::unit_of_work::UnitOfWork;

use crate::cache::Invalidation;
use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::users::user_from_row;
use crate::{Database, with_pool};

macro_rules! organization_columns {
    () => {
        "id, name, slug, logo_url, public_metadata, private_metadata, created_at, updated_at"
    };
}

fn organization_from_row(row: &impl StoreRow) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: row.read("id")?,
        name: row.read("name")?,
        slug: row.read("slug")?,
        logo_url: row.read("logo_url")?,
        public_metadata: row.read("public_metadata")?,
        private_metadata: row.read("private_metadata")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

fn membership_from_row(row: &impl StoreRow) -> Result<MembershipRecord, StoreError> {
    Ok(MembershipRecord {
        organization_id: row.read("organization_id")?,
        user_id: row.read("member_user_id")?,
        role: row.read("member_role")?,
        created_at: row.read("member_created_at")?,
        updated_at: row.read("member_updated_at")?,
    })
}

fn role_from_row(row: &impl StoreRow) -> Result<RoleRecord, StoreError> {
    let permissions: String = row.read("permissions")?;
    Ok(RoleRecord {
        organization_id: row.read("organization_id")?,
        key: row.read("role_key")?,
        name: row.read("name")?,
        permissions: permissions.split_whitespace().map(str::to_owned).collect(),
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

/// Membership columns under names that do not collide with a joined row's.
macro_rules! membership_columns {
    () => {
        "m.organization_id AS organization_id, m.user_id AS member_user_id, m.role AS member_role, \
         m.created_at AS member_created_at, m.updated_at AS member_updated_at"
    };
}

fn join_permissions(role: &RoleRecord) -> String {
    role.permissions.iter().cloned().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl OrganizationStore for Database {
    async fn create_organization(
        &self,
        organization: &OrganizationRecord,
        owner: &MembershipRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query(
                "INSERT INTO organizations (id, name, slug, logo_url, public_metadata, \
                 private_metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(organization.id.as_str())
            .bind(organization.name.as_str())
            .bind(organization.slug.as_str())
            .bind(organization.logo_url.as_deref())
            .bind(organization.public_metadata.as_str())
            .bind(organization.private_metadata.as_str())
            .bind(organization.created_at)
            .bind(organization.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO organization_members (organization_id, user_id, role, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(owner.organization_id.as_str())
            .bind(owner.user_id.as_str())
            .bind(owner.role.as_str())
            .bind(owner.created_at)
            .bind(owner.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!("SELECT ", organization_columns!(), " FROM organizations WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(organization_from_row).transpose()
        })
    }

    async fn update_organization(
        &self,
        organization: &OrganizationRecord,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let updated = sqlx::query(
                "UPDATE organizations SET name = $2, slug = $3, logo_url = $4, public_metadata = $5, \
                 private_metadata = $6, updated_at = $7 WHERE id = $1",
            )
            .bind(organization.id.as_str())
            .bind(organization.name.as_str())
            .bind(organization.slug.as_str())
            .bind(organization.logo_url.as_deref())
            .bind(organization.public_metadata.as_str())
            .bind(organization.private_metadata.as_str())
            .bind(organization.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn delete_organization(&self, id: &str, work: &UnitOfWork) -> Result<bool, StoreError> {
        // Its API keys go with it (a cascade): no cached copy may outlive them.
        let changed = [Invalidation::ApiKeysOfOrganization(id)];
        let done = write_transaction!(self, work: work, changed: &changed, transaction => {
            let deleted = sqlx::query("DELETE FROM organizations WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn list_organizations(
        &self,
        search: Option<&str>,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<OrganizationRecord>, StoreError> {
        let pattern = search.map(|text| {
            let escaped =
                text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let (after_time, after_id) = match after {
            Some(cursor) => (cursor.created_at, cursor.id.as_str()),
            None => (i64::MAX, ""),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", organization_columns!(), " FROM organizations \
                 WHERE ($1 IS NULL OR LOWER(name) LIKE $1 ESCAPE '\\' OR slug LIKE $1 ESCAPE '\\') \
                 AND (created_at < $2 OR (created_at = $2 AND ($3 = '' OR id < $3))) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ))
            .bind(pattern.as_deref())
            .bind(after_time)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(organization_from_row).collect()
        })
    }

    async fn memberships_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<(OrganizationRecord, MembershipRecord)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT o.id AS id, o.name AS name, o.slug AS slug, o.logo_url AS logo_url, \
                 o.public_metadata AS public_metadata, o.private_metadata AS private_metadata, \
                 o.created_at AS created_at, o.updated_at AS updated_at, ", membership_columns!(),
                " FROM organization_members m JOIN organizations o ON o.id = m.organization_id \
                 WHERE m.user_id = $1 ORDER BY m.created_at DESC, m.organization_id DESC"
            ))
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter()
                .map(|row| Ok((organization_from_row(row)?, membership_from_row(row)?)))
                .collect()
        })
    }

    async fn membership(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", membership_columns!(),
                " FROM organization_members m WHERE m.organization_id = $1 AND m.user_id = $2"
            ))
            .bind(organization_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(membership_from_row).transpose()
        })
    }

    async fn members(
        &self,
        organization_id: &str,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let (after_time, after_id) = match after {
            Some(cursor) => (cursor.created_at, cursor.id.as_str()),
            None => (i64::MAX, ""),
        };
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT u.id, u.email_ciphertext, u.email_digest, u.username, u.first_name, \
                 u.last_name, u.image_url, u.email_verified_at, u.password_hash, \
                 u.password_changed_at, u.failed_sign_in_attempts, u.locked_until, u.suspended_at, \
                 u.last_sign_in_at, u.public_metadata, u.private_metadata, u.system_role, \
                 u.created_at, u.updated_at, ", membership_columns!(),
                " FROM organization_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.organization_id = $1 \
                 AND (m.created_at < $2 OR (m.created_at = $2 AND ($3 = '' OR m.user_id < $3))) \
                 ORDER BY m.created_at DESC, m.user_id DESC LIMIT $4"
            ))
            .bind(organization_id)
            .bind(after_time)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter()
                .map(|row| Ok(MemberRecord { membership: membership_from_row(row)?, user: user_from_row(row)? }))
                .collect()
        })
    }

    async fn add_member(
        &self,
        membership: &MembershipRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query(
                "INSERT INTO organization_members (organization_id, user_id, role, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(membership.organization_id.as_str())
            .bind(membership.user_id.as_str())
            .bind(membership.role.as_str())
            .bind(membership.created_at)
            .bind(membership.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn set_member_role(
        &self,
        organization_id: &str,
        user_id: &str,
        role: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<MembershipOutcome, StoreError> {
        let outcome = write_transaction!(self, work: work, transaction => {
            // Locks the organization: concurrent owner changes queue here.
            sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
                .bind(organization_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let updated = sqlx::query(
                "UPDATE organization_members SET role = $3, updated_at = $4 \
                 WHERE organization_id = $1 AND user_id = $2 \
                 AND (role <> $5 OR $3 = $5 OR (SELECT COUNT(*) FROM organization_members \
                 WHERE organization_id = $1 AND role = $5) > 1)",
            )
            .bind(organization_id)
            .bind(user_id)
            .bind(role)
            .bind(now)
            .bind(OWNER)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                let exists = sqlx::query("SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2")
                    .bind(organization_id)
                    .bind(user_id)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?
                    .is_some();
                return Ok(if exists { MembershipOutcome::LastOwner } else { MembershipOutcome::NotFound });
            }
            MembershipOutcome::Done
        });
        Ok(outcome)
    }

    async fn remove_member(
        &self,
        organization_id: &str,
        user_id: &str,
        work: &UnitOfWork,
    ) -> Result<MembershipOutcome, StoreError> {
        let outcome = write_transaction!(self, work: work, transaction => {
            sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
                .bind(organization_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let deleted = sqlx::query(
                "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 \
                 AND (role <> $3 OR (SELECT COUNT(*) FROM organization_members \
                 WHERE organization_id = $1 AND role = $3) > 1)",
            )
            .bind(organization_id)
            .bind(user_id)
            .bind(OWNER)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if deleted == 0 {
                let exists = sqlx::query("SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2")
                    .bind(organization_id)
                    .bind(user_id)
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(map_sqlx_error)?
                    .is_some();
                return Ok(if exists { MembershipOutcome::LastOwner } else { MembershipOutcome::NotFound });
            }
            MembershipOutcome::Done
        });
        Ok(outcome)
    }

    async fn roles(&self, organization_id: &str) -> Result<Vec<RoleRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT organization_id, role_key, name, permissions, created_at, updated_at \
                 FROM organization_roles WHERE organization_id = $1 ORDER BY role_key",
            )
            .bind(organization_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(role_from_row).collect()
        })
    }

    async fn create_role(&self, role: &RoleRecord, work: &UnitOfWork) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query(
                "INSERT INTO organization_roles (organization_id, role_key, name, permissions, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(role.organization_id.as_str())
            .bind(role.key.as_str())
            .bind(role.name.as_str())
            .bind(join_permissions(role))
            .bind(role.created_at)
            .bind(role.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn update_role(&self, role: &RoleRecord, work: &UnitOfWork) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let updated = sqlx::query(
                "UPDATE organization_roles SET name = $3, permissions = $4, updated_at = $5 \
                 WHERE organization_id = $1 AND role_key = $2",
            )
            .bind(role.organization_id.as_str())
            .bind(role.key.as_str())
            .bind(role.name.as_str())
            .bind(join_permissions(role))
            .bind(role.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn delete_role(
        &self,
        organization_id: &str,
        key: &str,
        work: &UnitOfWork,
    ) -> Result<Option<i64>, StoreError> {
        let outcome = write_transaction!(self, work: work, transaction => {
            sqlx::query("UPDATE organizations SET updated_at = updated_at WHERE id = $1")
                .bind(organization_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let holders: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM organization_members WHERE organization_id = $1 AND role = $2",
            )
            .bind(organization_id)
            .bind(key)
            .fetch_one(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            if holders > 0 {
                return Ok(Some(holders));
            }
            let deleted = sqlx::query("DELETE FROM organization_roles WHERE organization_id = $1 AND role_key = $2")
                .bind(organization_id)
                .bind(key)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 0 {
                return Ok(None);
            }
            Some(0)
        });
        Ok(outcome)
    }
}

macro_rules! invitation_columns {
    () => {
        "id, organization_id, email_digest, email_ciphertext, role, token_digest, invited_by, \
         created_at, expires_at, accepted_at, declined_at, revoked_at"
    };
}

fn invitation_from_row(row: &impl StoreRow) -> Result<InvitationRecord, StoreError> {
    Ok(InvitationRecord {
        id: row.read("id")?,
        organization_id: row.read("organization_id")?,
        email_digest: row.read("email_digest")?,
        email_ciphertext: row.read("email_ciphertext")?,
        role: row.read("role")?,
        token_digest: row.read("token_digest")?,
        invited_by: row.read("invited_by")?,
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        accepted_at: row.read("accepted_at")?,
        declined_at: row.read("declined_at")?,
        revoked_at: row.read("revoked_at")?,
    })
}

#[async_trait]
impl InvitationStore for Database {
    async fn create_invitation(
        &self,
        invitation: &InvitationRecord,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        write_transaction!(self, work: work, transaction => {
            sqlx::query(
                "UPDATE organization_invitations SET revoked_at = $3 WHERE organization_id = $1 \
                 AND email_digest = $2 AND accepted_at IS NULL AND declined_at IS NULL \
                 AND revoked_at IS NULL",
            )
            .bind(invitation.organization_id.as_str())
            .bind(invitation.email_digest.as_slice())
            .bind(invitation.created_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO organization_invitations (id, organization_id, email_digest, \
                 email_ciphertext, role, token_digest, invited_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(invitation.id.as_str())
            .bind(invitation.organization_id.as_str())
            .bind(invitation.email_digest.as_slice())
            .bind(invitation.email_ciphertext.as_slice())
            .bind(invitation.role.as_str())
            .bind(invitation.token_digest.as_slice())
            .bind(invitation.invited_by.as_deref())
            .bind(invitation.created_at)
            .bind(invitation.expires_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn invitations(
        &self,
        organization_id: &str,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", invitation_columns!(), " FROM organization_invitations \
                 WHERE organization_id = $1 ORDER BY created_at DESC, id DESC"
            ))
            .bind(organization_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(invitation_from_row).collect()
        })
    }

    async fn invitation_by_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", invitation_columns!(), " FROM organization_invitations WHERE token_digest = $1"
            ))
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(invitation_from_row).transpose()
        })
    }

    async fn invitation(
        &self,
        invitation_id: &str,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(concat!(
                "SELECT ", invitation_columns!(), " FROM organization_invitations WHERE id = $1"
            ))
            .bind(invitation_id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(invitation_from_row).transpose()
        })
    }

    async fn pending_invitations_for_address(
        &self,
        email_digest: &[u8],
        now: i64,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(concat!(
                "SELECT ", invitation_columns!(), " FROM organization_invitations \
                 WHERE email_digest = $1 AND accepted_at IS NULL AND declined_at IS NULL \
                 AND revoked_at IS NULL AND expires_at > $2 \
                 ORDER BY created_at DESC, id DESC LIMIT 50"
            ))
            .bind(email_digest)
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(invitation_from_row).collect()
        })
    }

    async fn revoke_invitation(
        &self,
        organization_id: &str,
        invitation_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let updated = sqlx::query(
                "UPDATE organization_invitations SET revoked_at = $3 WHERE id = $2 \
                 AND organization_id = $1 AND accepted_at IS NULL AND declined_at IS NULL \
                 AND revoked_at IS NULL",
            )
            .bind(organization_id)
            .bind(invitation_id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }

    async fn accept_invitation(
        &self,
        invitation_id: &str,
        membership: &MembershipRecord,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<AcceptOutcome, StoreError> {
        let user = [Invalidation::User(membership.user_id.as_str())];
        let outcome = write_transaction!(self, work: work, changed: &user, transaction => {
            let spent = sqlx::query(
                "UPDATE organization_invitations SET accepted_at = $2 WHERE id = $1 \
                 AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL \
                 AND expires_at > $2",
            )
            .bind(invitation_id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if spent == 0 {
                return Ok(AcceptOutcome::NotPending);
            }
            let inserted = sqlx::query(
                "INSERT INTO organization_members (organization_id, user_id, role, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(membership.organization_id.as_str())
            .bind(membership.user_id.as_str())
            .bind(membership.role.as_str())
            .bind(membership.created_at)
            .bind(membership.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error);
            match inserted {
                Err(StoreError::Conflict(Conflict::Membership)) => {
                    return Ok(AcceptOutcome::AlreadyMember);
                }
                other => other?,
            };
            sqlx::query(
                "UPDATE users SET email_verified_at = $2, updated_at = $2 \
                 WHERE id = $1 AND email_verified_at IS NULL",
            )
            .bind(membership.user_id.as_str())
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
            AcceptOutcome::Done
        });
        Ok(outcome)
    }

    async fn decline_invitation(
        &self,
        invitation_id: &str,
        now: i64,
        work: &UnitOfWork,
    ) -> Result<bool, StoreError> {
        let done = write_transaction!(self, work: work, transaction => {
            let updated = sqlx::query(
                "UPDATE organization_invitations SET declined_at = $2 WHERE id = $1 \
                 AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL",
            )
            .bind(invitation_id)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            true
        });
        Ok(done)
    }
}

#[async_trait]
impl OrganizationClaimSource for Database {
    async fn organization_claims(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Option<OrganizationClaims>, StoreError> {
        let found: Option<(String, String, Option<String>)> = with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT o.slug AS slug, m.role AS role, r.permissions AS permissions \
                 FROM organization_members m JOIN organizations o ON o.id = m.organization_id \
                 LEFT JOIN organization_roles r ON r.organization_id = m.organization_id \
                 AND r.role_key = m.role \
                 WHERE m.organization_id = $1 AND m.user_id = $2",
            )
            .bind(organization_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.map(|row| Ok::<_, StoreError>((row.read("slug")?, row.read("role")?, row.read("permissions")?)))
                .transpose()?
        });
        Ok(found.map(|(slug, role, custom)| {
            let permissions = match built_in_permissions(&role) {
                Some(permissions) => permissions.into_iter().collect(),
                None => custom.unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
            };
            OrganizationClaims { id: organization_id.to_owned(), slug, role, permissions }
        }))
    }

    async fn organizations_of(&self, user_id: &str) -> Result<Vec<OrganizationChoice>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT o.id AS id, o.slug AS slug, o.name AS name \
                 FROM organization_members m JOIN organizations o ON o.id = m.organization_id \
                 WHERE m.user_id = $1 ORDER BY o.name, o.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter()
                .map(|row| {
                    Ok(OrganizationChoice {
                        id: row.read("id")?,
                        slug: row.read("slug")?,
                        name: row.read("name")?,
                    })
                })
                .collect()
        })
    }
}
