//! The fake's OAuth side: `OAuthStore` (clients and consents) and `DeviceCodeStore` (device
//! codes that are decided once and consumed once).

use async_trait::async_trait;

use super::{MemoryStore, not_used};
use crate::audit::AuditEvent;
use crate::oauth::client::ClientRecord;
use crate::oauth::device_flow::{DeviceCodeRecord, DeviceCodeStore, DeviceStatus};
use crate::oauth::store::ConnectedApplication;
use crate::oauth::store::{AuthorizationCodeRecord, OAuthStore};
use crate::store::{Conflict, StoreError};

#[async_trait]
impl OAuthStore for MemoryStore {
    async fn insert_client(
        &self,
        client: &ClientRecord,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict(Conflict::ClientId));
        }
        state.clients.insert(client.client_id.clone(), client.clone());
        state.audit.extend(events.iter().cloned());
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        Ok(self.state().clients.get(client_id).cloned())
    }

    async fn list_clients(
        &self,
        _after: Option<&str>,
        _limit: u32,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        Err(not_used())
    }

    async fn update_client(
        &self,
        _client: &ClientRecord,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn delete_client(
        &self,
        _client_id: &str,
        _events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn insert_authorization_code(
        &self,
        _code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn authorization_code(
        &self,
        _digest: &[u8],
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        Err(not_used())
    }

    async fn browser_session_of(&self, _session_id: &str) -> Result<Option<String>, StoreError> {
        Err(not_used())
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let key = (user_id.to_owned(), client_id.to_owned());
        Ok(self.state().consents.get(&key).cloned())
    }

    /// Replaces the user's consent to the client (the service merges before saving).
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        _now: i64,
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.consents.insert((user_id.to_owned(), client_id.to_owned()), scopes.to_vec());
        state.audit.extend(events.iter().cloned());
        Ok(())
    }

    async fn consents_of_user(
        &self,
        _user_id: &str,
    ) -> Result<Vec<ConnectedApplication>, StoreError> {
        Err(not_used())
    }

    async fn revoke_consent(
        &self,
        _user_id: &str,
        _client_id: &str,
        _now: i64,
        _events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn record_client_assertion(
        &self,
        _client_id: &str,
        _jti: &str,
        _expires_at: i64,
        _now: i64,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn revoke_access_token(&self, _jti: &str, _expires_at: i64) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn is_access_token_revoked(&self, _jti: &str) -> Result<bool, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl DeviceCodeStore for MemoryStore {
    async fn insert_device_code(&self, record: &DeviceCodeRecord) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.device_codes.iter().any(|code| code.user_code == record.user_code) {
            return Err(StoreError::Conflict(Conflict::DeviceUserCode));
        }
        state.device_codes.push(record.clone());
        Ok(())
    }

    async fn device_code_by_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<DeviceCodeRecord>, StoreError> {
        let state = self.state();
        let found = state.device_codes.iter().find(|code| code.device_code_digest == digest);
        Ok(found.cloned())
    }

    async fn device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceCodeRecord>, StoreError> {
        Ok(self.device_code(user_code))
    }

    /// Only a pending code is decided; the events are written only when it was.
    async fn decide_device_code(
        &self,
        user_code: &str,
        status: DeviceStatus,
        user_id: &str,
        auth_time: i64,
        amr: Option<&str>,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(code) = state
            .device_codes
            .iter_mut()
            .find(|code| code.user_code == user_code && code.status == DeviceStatus::Pending)
        else {
            return Ok(false);
        };
        code.status = status;
        code.user_id = Some(user_id.to_owned());
        code.auth_time = Some(auth_time);
        code.amr = amr.map(str::to_owned);
        state.audit.extend(events.iter().cloned());
        Ok(true)
    }

    async fn record_device_poll(&self, digest: &[u8], now: i64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(code) =
            state.device_codes.iter_mut().find(|code| code.device_code_digest == digest)
        else {
            return Ok(true);
        };
        let in_time = code.last_polled_at.is_none_or(|last| now - last >= code.interval_seconds);
        if !in_time {
            code.interval_seconds += 5;
        }
        code.last_polled_at = Some(now);
        Ok(in_time)
    }

    /// Approved → consumed, once.
    async fn consume_device_code(&self, digest: &[u8]) -> Result<bool, StoreError> {
        let mut state = self.state();
        let Some(code) = state.device_codes.iter_mut().find(|code| {
            code.device_code_digest == digest && code.status == DeviceStatus::Approved
        }) else {
            return Ok(false);
        };
        code.status = DeviceStatus::Consumed;
        Ok(true)
    }
}

/// No resource servers in the domain's unit tests (the integration tests register them):
/// every lookup finds none, and nothing is written.
#[async_trait]
impl crate::oauth::resources::ResourceServerStore for MemoryStore {
    async fn insert_resource_server(
        &self,
        _record: &crate::oauth::resources::ResourceServerRecord,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn update_resource_server(
        &self,
        _record: &crate::oauth::resources::ResourceServerRecord,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn delete_resource_server(
        &self,
        _id: &str,
        _events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn resource_server(
        &self,
        _id: &str,
    ) -> Result<Option<crate::oauth::resources::ResourceServerRecord>, StoreError> {
        Ok(None)
    }

    async fn resource_server_by_identifier(
        &self,
        _identifier: &str,
    ) -> Result<Option<crate::oauth::resources::ResourceServerRecord>, StoreError> {
        Ok(None)
    }

    async fn list_resource_servers(
        &self,
        _after: Option<&str>,
        _limit: u32,
    ) -> Result<Vec<crate::oauth::resources::ResourceServerRecord>, StoreError> {
        Ok(Vec::new())
    }
}
