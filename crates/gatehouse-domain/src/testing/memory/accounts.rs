//! The fake's accounts and sessions: `UserStore` (lookups, the sign-in read, the lockout
//! counter) and `SessionStore` (sessions, refresh-token rotation, revocation).

use async_trait::async_trait;

use super::{MemoryStore, not_used};
use crate::audit::AuditEvent;
use crate::sessions::record::{
    RefreshRotation, RefreshTokenRecord, RevokeReason, RotationOutcome, SessionRecord,
};
use crate::sessions::store::SessionStore;
use crate::store::{Conflict, StoreError};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::{
    FailedSignIn, PasswordChange, SignInFacts, UserChange, UserLookup, UserQuery, UserRecord,
};
use crate::users::store::UserStore;

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &UserRecord, work: &UnitOfWork) -> Result<(), StoreError> {
        let mut state = self.state();
        for existing in state.users.values() {
            if user.email_digest.is_some() && existing.email_digest == user.email_digest {
                return Err(StoreError::Conflict(Conflict::UserEmail));
            }
            if user.username.is_some() && existing.username == user.username {
                return Err(StoreError::Conflict(Conflict::UserUsername));
            }
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict(Conflict::Other("users_pkey".into())));
        }
        state.apply(work)?;
        state.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn insert_users_skipping_existing(
        &self,
        _users: &[UserRecord],
        _created: &[AuditEvent],
        _events: &[AuditEvent],
    ) -> Result<u64, StoreError> {
        Err(not_used())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn user_by_email_digest(&self, digest: &[u8]) -> Result<Option<UserRecord>, StoreError> {
        let state = self.state();
        let found = state.users.values().find(|user| user.email_digest.as_deref() == Some(digest));
        Ok(found.cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let state = self.state();
        let found = state.users.values().find(|user| user.username.as_deref() == Some(username));
        Ok(found.cloned())
    }

    async fn user_for_sign_in(
        &self,
        lookup: UserLookup<'_>,
        device_digest: &[u8],
    ) -> Result<Option<(UserRecord, SignInFacts)>, StoreError> {
        let state = self.state();
        let found = state.users.values().find(|user| match lookup {
            UserLookup::EmailDigest(digest) => user.email_digest.as_deref() == Some(digest),
            UserLookup::Username(username) => user.username.as_deref() == Some(username),
        });
        let Some(user) = found else { return Ok(None) };
        let devices = || state.known_devices.iter().filter(|device| device.user_id == user.id);
        let facts = SignInFacts {
            has_confirmed_factor: state
                .factors
                .iter()
                .any(|factor| factor.user_id == user.id && factor.confirmed_at.is_some()),
            any_known_device: devices().next().is_some(),
            this_device_known: devices().any(|device| device.digest == device_digest),
        };
        Ok(Some((user.clone(), facts)))
    }

    /// As the SQL does: only the columns the change names.
    async fn update_user(
        &self,
        user_id: &str,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        state.apply(work)?;
        if let Some(user) = state.users.get_mut(user_id) {
            change.apply(user);
        }
        Ok(())
    }

    async fn change_password(
        &self,
        _change: &PasswordChange,
        _history_size: usize,
        _keep_session: Option<&str>,
        _reason: RevokeReason,
        _work: &UnitOfWork,
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    /// As the SQL does in one statement: a lock that has run out starts the count again at 1;
    /// an active lock is kept as it is (never extended); otherwise reaching `threshold` locks
    /// until `lock_until`. The events are written either way.
    async fn record_failed_sign_in(
        &self,
        user_id: &str,
        now: i64,
        threshold: i64,
        lock_until: i64,
        events: &[AuditEvent],
        on_lock: &UnitOfWork,
    ) -> Result<FailedSignIn, StoreError> {
        let mut state = self.state();
        let outcome = match state.users.get_mut(user_id) {
            Some(user) => {
                let lock_ran_out = user.locked_until.is_some_and(|until| until <= now);
                let attempts = if lock_ran_out { 1 } else { user.failed_sign_in_attempts + 1 };
                let locked_until = match user.locked_until {
                    Some(until) if until > now => Some(until),
                    _ if attempts >= threshold => Some(lock_until),
                    _ => None,
                };
                user.failed_sign_in_attempts = attempts;
                user.locked_until = locked_until;
                let lock_started = attempts == threshold && locked_until == Some(lock_until);
                FailedSignIn { attempts, locked_until, lock_started }
            }
            None => FailedSignIn { attempts: 0, locked_until: None, lock_started: false },
        };
        state.audit.extend(events.iter().cloned());
        if outcome.lock_started {
            state.audit.extend(on_lock.events.iter().cloned());
        }
        Ok(outcome)
    }

    async fn password_history(
        &self,
        _user_id: &str,
        _limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Err(not_used())
    }

    async fn update_user_revoking_sessions(
        &self,
        _user_id: &str,
        _change: &UserChange,
        _reason: RevokeReason,
        _work: &crate::unit_of_work::UnitOfWork,
    ) -> Result<u64, StoreError> {
        Err(not_used())
    }

    async fn delete_user(
        &self,
        _user_id: &str,
        _work: &crate::unit_of_work::UnitOfWork,
        _now: i64,
    ) -> Result<bool, StoreError> {
        Err(not_used())
    }

    async fn list_users(&self, _query: &UserQuery) -> Result<Vec<UserRecord>, StoreError> {
        Err(not_used())
    }

    async fn users_with_system_role(
        &self,
        _role: &str,
        _limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        Err(not_used())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn start_session(
        &self,
        session: &SessionRecord,
        refresh_token: Option<&RefreshTokenRecord>,
        change: &UserChange,
        work: &UnitOfWork,
    ) -> Result<UserRecord, StoreError> {
        let mut state = self.state();
        if state.sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict(Conflict::Other("sessions_pkey".into())));
        }
        // As the real store: only the change's columns, only while the user is not suspended.
        let mut user = match state.users.get(&session.user_id) {
            Some(user) if user.suspended_at.is_none() => user.clone(),
            _ => return Err(StoreError::Conflict(Conflict::UserNotActive)),
        };
        state.apply(work)?;
        change.apply(&mut user);
        state.users.insert(user.id.clone(), user.clone());
        state.sessions.insert(session.id.clone(), session.clone());
        state.refresh_tokens.extend(refresh_token.cloned());
        Ok(user)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.state().sessions.get(id).cloned())
    }

    async fn session_with_user(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let state = self.state();
        let Some(session) = state.sessions.get(id) else { return Ok(None) };
        Ok(state.users.get(&session.user_id).map(|user| (session.clone(), user.clone())))
    }

    async fn refresh_token(
        &self,
        digest: &[u8],
    ) -> Result<Option<(RefreshTokenRecord, SessionRecord)>, StoreError> {
        let state = self.state();
        let Some(token) = state.refresh_tokens.iter().find(|token| token.token_digest == digest)
        else {
            return Ok(None);
        };
        Ok(state.sessions.get(&token.session_id).map(|session| (token.clone(), session.clone())))
    }

    /// Compare-and-set, as the SQL's `WHERE rotated_at IS NULL` and the rotation's other
    /// conditions: only the first allowed rotation of a token succeeds; it stores the
    /// successor and touches the session.
    async fn rotate_refresh_token(
        &self,
        rotation: &RefreshRotation<'_>,
    ) -> Result<Option<RotationOutcome>, StoreError> {
        let mut state = self.state();
        let lost_race = std::mem::take(&mut state.lose_next_rotation);
        let Some(index) =
            state.refresh_tokens.iter().position(|token| token.token_digest == rotation.presented)
        else {
            return Ok(None);
        };
        let token = state.refresh_tokens[index].clone();
        let Some(session) = state.sessions.get(&token.session_id).cloned() else {
            return Ok(None);
        };
        let user_suspended =
            state.users.get(&session.user_id).is_none_or(|user| user.suspended_at.is_some());
        let mut found = RotationOutcome { token, session, user_suspended, rotated: false };
        if !rotation.allows(&found) {
            return Ok(Some(found));
        }
        state.refresh_tokens[index].rotated_at = Some(rotation.now);
        if lost_race {
            // The other request rotated it; its successor is not this one.
            return Ok(Some(found));
        }
        state.refresh_tokens.push(rotation.successor_record(&found.session));
        if let Some(stored) = state.sessions.get_mut(&found.session.id)
            && stored.last_used_at <= rotation.touch_if_used_before
        {
            stored.last_used_at = rotation.now;
        }
        found.rotated = true;
        Ok(Some(found))
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        now: i64,
        reason: RevokeReason,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let revoked = match state.sessions.get_mut(session_id) {
            Some(session) if session.revoked_at.is_none() => {
                session.revoked_at = Some(now);
                session.revoked_reason = Some(reason.as_str().to_owned());
                true
            }
            _ => false,
        };
        state.audit.extend(events.iter().cloned());
        Ok(revoked)
    }

    async fn active_sessions(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let state = self.state();
        let mut sessions: Vec<SessionRecord> = state
            .sessions
            .values()
            .filter(|session| session.user_id == user_id && session.is_active(now))
            .cloned()
            .collect();
        sessions.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(sessions)
    }

    async fn touch_session(&self, _session_id: &str, _now: i64) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn update_session_authentication(
        &self,
        _session_id: &str,
        _auth_time: i64,
        _amr: &str,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }

    async fn set_session_organization(
        &self,
        _session_id: &str,
        _organization_id: Option<&str>,
        _events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        Err(not_used())
    }
}
