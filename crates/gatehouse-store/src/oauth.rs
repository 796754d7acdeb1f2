//! `OAuthStore` on SQL: `oauth_clients`, `authorization_codes`, `consents`,
//! `revoked_access_tokens`.

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oauth::client::ClientRecord;
use gatehouse_domain::oauth::store::ConnectedApplication;
use gatehouse_domain::oauth::{AuthorizationCodeRecord, OAuthStore};

use crate::audit::insert_events;
use crate::batch::SqliteBatch;
use crate::cache::Invalidation;
use crate::columns::{StoreQuery, StoreRow};
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::group_commit::{GroupFailure, GroupWork, column};
use crate::{Database, with_pool};
use sqlx::PgPool;

fn to_json(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

fn from_json(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}

/// Binds a client's columns as $1..$21 in the order both the INSERT and the UPDATE name them
/// (the INSERT adds `created_at` as $22).
fn bind_client_columns<Q: StoreQuery>(query: Q, client: &ClientRecord) -> Q {
    query
        .bind_value(client.client_id.as_str())
        .bind_value(client.name.as_str())
        .bind_value(client.secret_digest.as_deref())
        .bind_value(client.previous_secret_digest.as_deref())
        .bind_value(client.previous_secret_expires_at)
        .bind_value(to_json(&client.redirect_uris))
        .bind_value(to_json(&client.post_logout_redirect_uris))
        .bind_value(to_json(&client.grant_types))
        .bind_value(to_json(&client.scopes))
        .bind_value(client.token_endpoint_auth_method.as_str())
        .bind_value(i64::from(client.skip_consent))
        .bind_value(client.access_token_ttl_seconds)
        .bind_value(client.refresh_token_ttl_seconds)
        .bind_value(client.updated_at)
        .bind_value(client.jwks.as_ref().map(|jwks| jwks.to_string()))
        .bind_value(i64::from(client.require_pushed_authorization_requests))
        .bind_value(i64::from(client.dpop_bound_access_tokens))
        .bind_value(client.registration_token_digest.as_deref())
        .bind_value(client.backchannel_logout_uri.as_deref())
        .bind_value(i64::from(client.backchannel_logout_session_required))
        .bind_value(client.document_expires_at)
}

macro_rules! select_clients {
    ($rest:literal) => {
        concat!(
            "SELECT client_id, name, secret_digest, previous_secret_digest, previous_secret_expires_at, ",
            "redirect_uris, post_logout_redirect_uris, grant_types, scopes, token_endpoint_auth_method, jwks, ",
            "skip_consent, access_token_ttl_seconds, refresh_token_ttl_seconds, created_at, updated_at, ",
            "require_pushed_authorization_requests, dpop_bound_access_tokens, registration_token_digest, ",
            "backchannel_logout_uri, backchannel_logout_session_required, document_expires_at ",
            "FROM oauth_clients ",
            $rest
        )
    };
}

/// One `oauth_clients` row, as `select_clients!` selects it.
fn client_from_row(row: &impl StoreRow) -> Result<ClientRecord, StoreError> {
    let jwks: Option<String> = row.read("jwks")?;
    Ok(ClientRecord {
        client_id: row.read("client_id")?,
        name: row.read("name")?,
        secret_digest: row.read("secret_digest")?,
        previous_secret_digest: row.read("previous_secret_digest")?,
        previous_secret_expires_at: row.read("previous_secret_expires_at")?,
        redirect_uris: json_list(row, "redirect_uris")?,
        post_logout_redirect_uris: json_list(row, "post_logout_redirect_uris")?,
        grant_types: json_list(row, "grant_types")?,
        scopes: json_list(row, "scopes")?,
        token_endpoint_auth_method: row.read("token_endpoint_auth_method")?,
        jwks: jwks
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|error| StoreError::Corrupt(format!("jwks: {error}")))
            })
            .transpose()?,
        skip_consent: row.read::<i64>("skip_consent")? != 0,
        require_pushed_authorization_requests: row
            .read::<i64>("require_pushed_authorization_requests")?
            != 0,
        dpop_bound_access_tokens: row.read::<i64>("dpop_bound_access_tokens")? != 0,
        registration_token_digest: row.read("registration_token_digest")?,
        backchannel_logout_uri: row.read("backchannel_logout_uri")?,
        backchannel_logout_session_required: row
            .read::<i64>("backchannel_logout_session_required")?
            != 0,
        document_expires_at: row.read("document_expires_at")?,
        access_token_ttl_seconds: row.read("access_token_ttl_seconds")?,
        refresh_token_ttl_seconds: row.read("refresh_token_ttl_seconds")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

/// A column holding a JSON array of strings.
fn json_list(row: &impl StoreRow, column: &str) -> Result<Vec<String>, StoreError> {
    from_json(&row.read::<String>(column)?, column)
}

/// One `authorization_codes` row.
fn authorization_code_from_row(row: &impl StoreRow) -> Result<AuthorizationCodeRecord, StoreError> {
    Ok(AuthorizationCodeRecord {
        code_digest: row.read("code_digest")?,
        client_id: row.read("client_id")?,
        user_id: row.read("user_id")?,
        browser_session_id: row.read("browser_session_id")?,
        redirect_uri: row.read("redirect_uri")?,
        scope: row.read("scope")?,
        nonce: row.read("nonce")?,
        code_challenge: row.read("code_challenge")?,
        auth_time: row.read("auth_time")?,
        amr: amr_text(&row.read::<String>("amr")?),
        created_at: row.read("created_at")?,
        expires_at: row.read("expires_at")?,
        used_at: row.read("used_at")?,
        issued_session_id: row.read("issued_session_id")?,
        organization_id: row.read("organization_id")?,
        dpop_jkt: row.read("dpop_jkt")?,
        resources: crate::sessions::resources_from_column(row.read("resources")?)?,
    })
}

const INSERT_AUTHORIZATION_CODE: &str = "INSERT INTO authorization_codes (code_digest, \
     client_id, user_id, browser_session_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at, amr, organization_id, dpop_jkt, resources) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

fn bind_authorization_code<Q: StoreQuery>(query: Q, code: &AuthorizationCodeRecord) -> Q {
    query
        .bind_value(code.code_digest.as_slice())
        .bind_value(code.client_id.as_str())
        .bind_value(code.user_id.as_str())
        .bind_value(code.browser_session_id.as_str())
        .bind_value(code.redirect_uri.as_str())
        .bind_value(code.scope.as_str())
        .bind_value(code.nonce.as_deref())
        .bind_value(code.code_challenge.as_deref())
        .bind_value(code.auth_time)
        .bind_value(code.created_at)
        .bind_value(code.expires_at)
        // `amr` is a JSON array in this table (0003); the domain carries it space-separated.
        .bind_value(amr_json(code.amr.as_deref()))
        .bind_value(code.organization_id.as_deref())
        .bind_value(code.dpop_jkt.as_deref())
        .bind_value(crate::sessions::resources_column(&code.resources))
}

/// [`INSERT_AUTHORIZATION_CODE`] for a group: each column as an array, rows in order.
const INSERT_AUTHORIZATION_CODES_POSTGRES: &str = "INSERT INTO authorization_codes (code_digest, \
     client_id, user_id, browser_session_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at, amr, organization_id, dpop_jkt, resources) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], \
     $12::text[], $13::text[], $14::text[], $15::text[])";

/// Authorization codes on PostgreSQL, stored in groups ([`crate::group_commit`]): every
/// authorization of a signed-in browser writes one. Keyed by the code's digest.
#[derive(Debug)]
pub(crate) struct AuthorizationCodes;

#[async_trait]
impl GroupWork for AuthorizationCodes {
    type Request = AuthorizationCodeRecord;
    type Answer = ();

    fn key(code: &AuthorizationCodeRecord) -> &[u8] {
        &code.code_digest
    }

    async fn alone(&self, pool: &PgPool, code: &AuthorizationCodeRecord) -> Result<(), StoreError> {
        bind_authorization_code(sqlx::query(INSERT_AUTHORIZATION_CODE), code)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }

    async fn together(
        &self,
        pool: &PgPool,
        codes: &[&AuthorizationCodeRecord],
    ) -> Result<Vec<()>, GroupFailure> {
        let inserted = sqlx::query(INSERT_AUTHORIZATION_CODES_POSTGRES)
            .bind(column(codes, |c| c.code_digest.clone()))
            .bind(column(codes, |c| c.client_id.clone()))
            .bind(column(codes, |c| c.user_id.clone()))
            .bind(column(codes, |c| c.browser_session_id.clone()))
            .bind(column(codes, |c| c.redirect_uri.clone()))
            .bind(column(codes, |c| c.scope.clone()))
            .bind(column(codes, |c| c.nonce.clone()))
            .bind(column(codes, |c| c.code_challenge.clone()))
            .bind(column(codes, |c| c.auth_time))
            .bind(column(codes, |c| c.created_at))
            .bind(column(codes, |c| c.expires_at))
            .bind(column(codes, |c| amr_json(c.amr.as_deref())))
            .bind(column(codes, |c| c.organization_id.clone()))
            .bind(column(codes, |c| c.dpop_jkt.clone()))
            .bind(column(codes, |c| crate::sessions::resources_column(&c.resources)))
            .execute(pool)
            .await?
            .rows_affected();
        if inserted != codes.len() as u64 {
            return Err(GroupFailure::Failed(
                StoreError::Corrupt,
                format!("{inserted} codes stored of a group of {}", codes.len()),
            ));
        }
        Ok(vec![(); codes.len()])
    }
}

#[async_trait]
impl OAuthStore for Database {
    async fn insert_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            bind_client_columns(sqlx::query(
                "INSERT INTO oauth_clients (client_id, name, secret_digest, previous_secret_digest, \
                 previous_secret_expires_at, redirect_uris, post_logout_redirect_uris, grant_types, scopes, \
                 token_endpoint_auth_method, skip_consent, access_token_ttl_seconds, \
                 refresh_token_ttl_seconds, updated_at, jwks, require_pushed_authorization_requests, \
                 dpop_bound_access_tokens, registration_token_digest, backchannel_logout_uri, \
                 backchannel_logout_session_required, document_expires_at, created_at) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                 $19, $20, $21, $22)",
            ), client)
            .bind(client.created_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let cache = self.cache();
        if let Some(client) = cache.client(client_id) {
            return Ok(Some(client));
        }
        let load = cache.begin_load();
        let client = with_pool!(self, pool => {
            let row = sqlx::query(select_clients!("WHERE client_id = $1"))
                .bind(client_id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(client_from_row).transpose()?
        });
        if let Some(client) = &client {
            cache.put_client(load, client);
        }
        Ok(client)
    }

    async fn list_clients(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_clients!("WHERE client_id > $1 ORDER BY client_id LIMIT $2"))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(client_from_row).collect()
        })
    }

    async fn update_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let changed = [Invalidation::Client(&client.client_id)];
        write_transaction!(self, events: events, changed: &changed, transaction => {
            bind_client_columns(sqlx::query(
                "UPDATE oauth_clients SET name = $2, secret_digest = $3, previous_secret_digest = $4, \
                 previous_secret_expires_at = $5, redirect_uris = $6, post_logout_redirect_uris = $7, \
                 grant_types = $8, scopes = $9, token_endpoint_auth_method = $10, skip_consent = $11, \
                 access_token_ttl_seconds = $12, refresh_token_ttl_seconds = $13, updated_at = $14, \
                 jwks = $15, require_pushed_authorization_requests = $16, \
                 dpop_bound_access_tokens = $17, registration_token_digest = $18, \
                 backchannel_logout_uri = $19, backchannel_logout_session_required = $20, \
                 document_expires_at = $21 WHERE client_id = $1",
            ), client)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn delete_client(
        &self,
        client_id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let changed = [Invalidation::Client(client_id), Invalidation::SessionsOfClient(client_id)];
        let deleted = write_transaction!(self, changed: &changed, transaction => {
            // Sessions granted to the client end with it.
            sqlx::query("UPDATE sessions SET revoked_at = $2, revoked_reason = 'client_deleted' WHERE client_id = $1 AND revoked_at IS NULL")
                .bind(client_id)
                .bind(events.first().map_or(0, |event| event.occurred_at))
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
            let deleted = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 1 {
                insert_events(&mut *transaction, events).await?;
            }
            deleted == 1
        });
        Ok(deleted)
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        // The write of every authorization: on SQLite one round trip to the writer's thread.
        match self {
            Database::Sqlite(sqlite) => {
                let mut batch = SqliteBatch::default();
                bind_authorization_code(batch.push(INSERT_AUTHORIZATION_CODE), code);
                batch.commit_on_writer(&sqlite.writer).await?;
            }
            Database::Postgres(postgres) => postgres.insert_authorization_code(code).await?,
        }
        // Its exchange (on this instance) need not read it back.
        self.cache().put_code(code);
        Ok(())
    }

    async fn authorization_code(
        &self,
        digest: &[u8],
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        if let Some(code) = self.cache().code(digest) {
            return Ok(Some(code));
        }
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT code_digest, client_id, user_id, browser_session_id, redirect_uri, scope, nonce, \
                 code_challenge, auth_time, created_at, expires_at, used_at, issued_session_id, amr, \
                 organization_id, dpop_jkt, resources FROM authorization_codes WHERE code_digest = $1",
            )
            .bind(digest)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(authorization_code_from_row).transpose()
        })
    }

    async fn browser_session_of(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT browser_session_id FROM authorization_codes WHERE issued_session_id = $1",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)
        })
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let scopes: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        scopes.map(|text| from_json(&text, "consents.scopes")).transpose()
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(to_json(scopes))
            .bind(now)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn consents_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectedApplication>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.client_id, o.name, c.scopes, c.granted_at FROM consents c \
                 JOIN oauth_clients o ON o.client_id = c.client_id WHERE c.user_id = $1 \
                 ORDER BY c.granted_at DESC, c.client_id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?
        });
        rows.into_iter()
            .map(|(client_id, client_name, scopes, granted_at)| {
                Ok(ConnectedApplication {
                    client_id,
                    client_name,
                    scopes: from_json(&scopes, "consents.scopes")?,
                    granted_at,
                })
            })
            .collect()
    }

    async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, changed: &[Invalidation::SessionsOfUser(user_id)], transaction => {
            let deleted = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected()
                == 1;
            if deleted {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $3, revoked_reason = 'consent_revoked' \
                     WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
                insert_events(&mut *transaction, events).await?;
            }
            deleted
        });
        Ok(deleted)
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = write_transaction!(self, autocommit, pool => {
            sqlx::query("DELETE FROM used_client_assertions WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await
                .map_err(map_sqlx_error)?;
            sqlx::query(
                "INSERT INTO used_client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(client_id)
            .bind(jti)
            .bind(expires_at)
            .execute(pool)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        write_transaction!(self, changed: &[Invalidation::AccessToken(jti)], transaction => {
            sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(jti)
                .bind(expires_at)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let cache = self.cache();
        if let Some(revoked) = cache.token_revoked(jti) {
            return Ok(revoked);
        }
        let load = cache.begin_load();
        let found: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT expires_at FROM revoked_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?
        });
        cache.put_token_revoked(load, jti, found.is_some());
        Ok(found.is_some())
    }
}

/// Space-separated `amr` values as the JSON array `authorization_codes.amr` holds.
fn amr_json(amr: Option<&str>) -> String {
    let values: Vec<&str> = amr.unwrap_or("pwd").split(' ').filter(|v| !v.is_empty()).collect();
    serde_json::Value::from(values).to_string()
}

/// The JSON array of `authorization_codes.amr` as space-separated values.
fn amr_text(json: &str) -> Option<String> {
    let values: Vec<String> = serde_json::from_str(json).ok()?;
    Some(values.join(" "))
}
