//! `ResourceServerStore` (the `resource_servers` table: RFC 8707 resource servers).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::oauth::resources::{ResourceServerRecord, ResourceServerStore};

use crate::audit::insert_events;
use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

macro_rules! select_resource_servers {
    ($rest:literal) => {
        concat!(
            "SELECT id, identifier, name, scopes, token_format, access_token_ttl_seconds, ",
            "delegation_clients, impersonation_clients, created_at, updated_at FROM resource_servers ",
            $rest
        )
    };
}

/// A column holding a JSON array of strings.
fn list(row: &impl StoreRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.read(column)?;
    serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}

fn resource_server_from_row(row: &impl StoreRow) -> Result<ResourceServerRecord, StoreError> {
    Ok(ResourceServerRecord {
        id: row.read("id")?,
        identifier: row.read("identifier")?,
        name: row.read("name")?,
        scopes: list(row, "scopes")?,
        delegation_clients: list(row, "delegation_clients")?,
        impersonation_clients: list(row, "impersonation_clients")?,
        token_format: row.read("token_format")?,
        access_token_ttl_seconds: row.read("access_token_ttl_seconds")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

fn json(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

#[async_trait]
impl ResourceServerStore for Database {
    async fn insert_resource_server(
        &self,
        record: &ResourceServerRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "INSERT INTO resource_servers (id, identifier, name, scopes, token_format, \
                 access_token_ttl_seconds, delegation_clients, impersonation_clients, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(record.id.as_str())
            .bind(record.identifier.as_str())
            .bind(record.name.as_str())
            .bind(json(&record.scopes))
            .bind(record.token_format.as_str())
            .bind(record.access_token_ttl_seconds)
            .bind(json(&record.delegation_clients))
            .bind(json(&record.impersonation_clients))
            .bind(record.created_at)
            .bind(record.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn update_resource_server(
        &self,
        record: &ResourceServerRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "UPDATE resource_servers SET identifier = $2, name = $3, scopes = $4, token_format = $5, \
                 access_token_ttl_seconds = $6, delegation_clients = $7, impersonation_clients = $8, \
                 updated_at = $9 WHERE id = $1",
            )
            .bind(record.id.as_str())
            .bind(record.identifier.as_str())
            .bind(record.name.as_str())
            .bind(json(&record.scopes))
            .bind(record.token_format.as_str())
            .bind(record.access_token_ttl_seconds)
            .bind(json(&record.delegation_clients))
            .bind(json(&record.impersonation_clients))
            .bind(record.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn delete_resource_server(
        &self,
        id: &str,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, changed: &[], transaction => {
            let deleted = sqlx::query("DELETE FROM resource_servers WHERE id = $1")
                .bind(id)
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

    async fn resource_server(&self, id: &str) -> Result<Option<ResourceServerRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(select_resource_servers!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(resource_server_from_row).transpose()
        })
    }

    async fn resource_server_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<ResourceServerRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(select_resource_servers!("WHERE identifier = $1"))
                .bind(identifier)
                .fetch_optional(pool)
                .await
                .map_err(map_sqlx_error)?;
            row.as_ref().map(resource_server_from_row).transpose()
        })
    }

    async fn list_resource_servers(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ResourceServerRecord>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(select_resource_servers!("WHERE id > $1 ORDER BY id LIMIT $2"))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(map_sqlx_error)?;
            rows.iter().map(resource_server_from_row).collect()
        })
    }
}
