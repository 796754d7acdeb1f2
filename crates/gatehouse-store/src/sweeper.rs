//! `SweeperStore`: the sweep's lease (`sweeper_leases`) and the batched deletes of every swept
//! table. One SQL text per table serves both backends: `DELETE ... WHERE key IN (SELECT key
//! ... LIMIT n)` (row values for the one table with a composite key).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::sweeper::{SweeperStore, SweptTable};

use crate::Database;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;

/// Takes the lease when it is free or ran out; a running lease of anyone else (or of this
/// holder's previous period) leaves it alone and changes no row.
const CLAIM: &str = "INSERT INTO sweeper_leases (name, holder, lease_until) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
     WHERE sweeper_leases.lease_until <= $4";

/// One batch's statement for `table`: `$1` the cutoff, `$2` the batch size.
///
/// Sessions and revoked access tokens are cached by the read cache, yet these deletes name no
/// invalidation: they remove only rows every reader already treats as gone (an expired
/// session is not active; a revocation outlives the token it revokes), so a cached copy
/// answers exactly as the missing row does, and absence is never cached.
fn batch_sql(table: SweptTable) -> &'static str {
    match table {
        SweptTable::Sessions => {
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2)"
        }
        // A rotated token stays while its session lives: presenting it again still revokes the
        // family. Tokens of an expired session go here, in batches, before the session's own
        // delete would cascade to all of them at once.
        SweptTable::RefreshTokens => {
            "DELETE FROM refresh_tokens WHERE token_digest IN \
             (SELECT token_digest FROM refresh_tokens WHERE expires_at < $1 \
             AND (rotated_at IS NULL OR session_id IN \
             (SELECT id FROM sessions WHERE expires_at < $1)) LIMIT $2)"
        }
        // A spent code stays while the session its exchange issued lives: a replay still
        // revokes that session.
        SweptTable::AuthorizationCodes => {
            "DELETE FROM authorization_codes WHERE code_digest IN \
             (SELECT code_digest FROM authorization_codes WHERE expires_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM sessions \
             WHERE sessions.id = authorization_codes.issued_session_id \
             AND sessions.expires_at >= $1) LIMIT $2)"
        }
        SweptTable::OneTimeTokens => {
            "DELETE FROM one_time_tokens WHERE token_digest IN \
             (SELECT token_digest FROM one_time_tokens WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::RevokedAccessTokens => {
            "DELETE FROM revoked_access_tokens WHERE jti IN \
             (SELECT jti FROM revoked_access_tokens WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::DeviceCodes => {
            "DELETE FROM device_codes WHERE device_code_digest IN \
             (SELECT device_code_digest FROM device_codes WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::PushedAuthorizationRequests => {
            "DELETE FROM pushed_authorization_requests WHERE request_digest IN \
             (SELECT request_digest FROM pushed_authorization_requests WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::UsedClientAssertions => {
            "DELETE FROM used_client_assertions WHERE (client_id, jti) IN \
             (SELECT client_id, jti FROM used_client_assertions WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::RegistrationTokens => {
            "DELETE FROM registration_tokens WHERE id IN \
             (SELECT id FROM registration_tokens WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::UsedDpopProofs => {
            "DELETE FROM used_dpop_proofs WHERE (jkt, jti) IN \
             (SELECT jkt, jti FROM used_dpop_proofs WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::MfaCodes => {
            "DELETE FROM mfa_codes WHERE id IN \
             (SELECT id FROM mfa_codes WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::MfaChallenges => {
            "DELETE FROM mfa_challenges WHERE token_digest IN \
             (SELECT token_digest FROM mfa_challenges WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::PasskeyCeremonies => {
            "DELETE FROM passkey_ceremonies WHERE id_digest IN \
             (SELECT id_digest FROM passkey_ceremonies WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::OrganizationInvitations => {
            "DELETE FROM organization_invitations WHERE id IN \
             (SELECT id FROM organization_invitations WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::TrustedDevices => {
            "DELETE FROM trusted_devices WHERE id IN \
             (SELECT id FROM trusted_devices WHERE expires_at < $1 LIMIT $2)"
        }
        SweptTable::Outbox => {
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2)"
        }
        // A key ended when it was revoked or expired; it goes once that is older than the
        // retention (the cutoff is `now - retention`). Never cached stale: a cached copy of a
        // dead key answers exactly as the missing row does.
        SweptTable::ApiKeys => {
            "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys \
             WHERE revoked_at < $1 OR expires_at < $1 LIMIT $2)"
        }
        // Never swept here: audit rows go only behind a signed checkpoint
        // (`AuditIntegrity::sweep_retention`), which `sweep_batch` leaves to the domain.
        SweptTable::AuditEvents => "",
        // Carried out by the domain (an account's deletion, its email and audit event).
        SweptTable::AccountDeletions => "",
    }
}

#[async_trait]
impl SweeperStore for Database {
    async fn claim_sweep(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let claimed = write_transaction!(self, autocommit, pool => {
            sqlx::query(CLAIM)
                .bind(name)
                .bind(holder)
                .bind(lease_until)
                .bind(now)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(claimed == 1)
    }

    async fn sweep_batch(
        &self,
        table: SweptTable,
        cutoff: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        if matches!(table, SweptTable::AuditEvents | SweptTable::AccountDeletions) {
            return Ok(0);
        }
        let removed = write_transaction!(self, autocommit, pool => {
            sqlx::query(batch_sql(table))
                .bind(cutoff)
                .bind(i64::from(limit))
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
        });
        Ok(removed)
    }
}
