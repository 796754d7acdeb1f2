//! `ProviderStore` on SQL: the `identity_providers` table (admin-added upstream providers;
//! settings as JSON, the client secret sealed by the domain).

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::federation::store::{ProviderStore, StoredProvider};

use crate::columns::StoreRow;
use crate::database::write_transaction;
use crate::error::map_sqlx_error;
use crate::{Database, with_pool};

fn provider_from_row(row: &impl StoreRow) -> Result<StoredProvider, StoreError> {
    let text: String = row.read("settings")?;
    let settings = serde_json::from_str(&text)
        .map_err(|error| StoreError::Corrupt(format!("identity provider settings: {error}")))?;
    Ok(StoredProvider {
        settings,
        client_secret: row.read("client_secret")?,
        created_at: row.read("created_at")?,
        updated_at: row.read("updated_at")?,
    })
}

fn settings_text(provider: &StoredProvider) -> Result<String, StoreError> {
    serde_json::to_string(&provider.settings)
        .map_err(|error| StoreError::Other(format!("identity provider settings: {error}")))
}

#[async_trait]
impl ProviderStore for Database {
    async fn stored_providers(&self) -> Result<Vec<StoredProvider>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, settings, client_secret, created_at, updated_at \
                 FROM identity_providers ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await
            .map_err(map_sqlx_error)?;
            rows.iter().map(provider_from_row).collect()
        })
    }

    async fn stored_provider(&self, id: &str) -> Result<Option<StoredProvider>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, settings, client_secret, created_at, updated_at \
                 FROM identity_providers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(map_sqlx_error)?;
            row.as_ref().map(provider_from_row).transpose()
        })
    }

    async fn insert_provider(
        &self,
        provider: &StoredProvider,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let settings = settings_text(provider)?;
        write_transaction!(self, events: events, transaction => {
            sqlx::query(
                "INSERT INTO identity_providers (id, settings, client_secret, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(provider.settings.id.as_str())
            .bind(settings.as_str())
            .bind(provider.client_secret.as_deref())
            .bind(provider.created_at)
            .bind(provider.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?;
        });
        Ok(())
    }

    async fn update_provider(
        &self,
        provider: &StoredProvider,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let settings = settings_text(provider)?;
        let updated = write_transaction!(self, transaction => {
            let updated = sqlx::query(
                "UPDATE identity_providers SET settings = $2, client_secret = $3, updated_at = $4 \
                 WHERE id = $1",
            )
            .bind(provider.settings.id.as_str())
            .bind(settings.as_str())
            .bind(provider.client_secret.as_deref())
            .bind(provider.updated_at)
            .execute(&mut *transaction)
            .await
            .map_err(map_sqlx_error)?
            .rows_affected();
            if updated == 1 {
                crate::audit::insert_events(&mut *transaction, events).await?;
            }
            updated == 1
        });
        Ok(updated)
    }

    async fn delete_provider(&self, id: &str, events: &[AuditEvent]) -> Result<bool, StoreError> {
        let deleted = write_transaction!(self, transaction => {
            let deleted = sqlx::query("DELETE FROM identity_providers WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(map_sqlx_error)?
                .rows_affected();
            if deleted == 1 {
                crate::audit::insert_events(&mut *transaction, events).await?;
            }
            deleted == 1
        });
        Ok(deleted)
    }
}
