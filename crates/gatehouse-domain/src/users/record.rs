//! The user account as stored, and the shapes of its lookups.
//!
//! The services own the rules; this module only fixes the shape of the row. Email is
//! never stored in clear: `email_ciphertext` is sealed with the field cipher and
//! `email_digest` is the keyed blind index used for lookups and uniqueness.

/// The system role that unlocks the admin API with a user's own token.
pub const SYSTEM_ROLE_ADMIN: &str = "admin";

/// One row of `users`. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub email_ciphertext: Option<Vec<u8>>,
    pub email_digest: Option<Vec<u8>>,
    /// Normalised (NFKC, case-folded) username, unique when present.
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub email_verified_at: Option<i64>,
    /// PHC string (Argon2id, or an imported legacy format until the next sign-in).
    pub password_hash: Option<String>,
    pub password_changed_at: Option<i64>,
    pub failed_sign_in_attempts: i64,
    pub locked_until: Option<i64>,
    pub suspended_at: Option<i64>,
    pub last_sign_in_at: Option<i64>,
    /// JSON object text, readable by the user and by clients.
    pub public_metadata: String,
    /// JSON object text, only for the backend and admins.
    pub private_metadata: String,
    /// `None` or [`SYSTEM_ROLE_ADMIN`].
    pub system_role: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `email_ciphertext` and `email_digest` of a row.
pub type EmailColumns = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The columns of `users` one write changes, and nothing else: a write never puts back a
/// column from a copy that may be stale (a sign-in in flight must not undo a suspension, a
/// password reset or a role change made meanwhile). `None` leaves a column as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// The address's ciphertext and blind index, changed together.
    pub email: Option<EmailColumns>,
    pub username: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub image_url: Option<Option<String>>,
    pub email_verified_at: Option<Option<i64>>,
    /// A re-hashed password (same password, today's parameters); a new password goes through
    /// `UserStore::change_password`, conditional on the hash it replaces.
    pub rehashed_password: Option<String>,
    pub suspended_at: Option<Option<i64>>,
    pub system_role: Option<Option<String>>,
    pub public_metadata: Option<String>,
    pub private_metadata: Option<String>,
    /// Clears the failure count and any lock.
    pub unlock: bool,
    pub last_sign_in_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl UserChange {
    /// Whether it changes no column.
    pub fn is_empty(&self) -> bool {
        *self == UserChange::default()
    }

    /// What `after` changes of `before` (a service's copy before and after its edits): only
    /// those columns are written. The security state (failures, lock, password) is never
    /// taken from a copy, only asked for explicitly.
    pub fn between(before: &UserRecord, after: &UserRecord) -> UserChange {
        fn changed<T: PartialEq + Clone>(before: &T, after: &T) -> Option<T> {
            (before != after).then(|| after.clone())
        }
        UserChange {
            email: (before.email_ciphertext != after.email_ciphertext
                || before.email_digest != after.email_digest)
                .then(|| (after.email_ciphertext.clone(), after.email_digest.clone())),
            username: changed(&before.username, &after.username),
            first_name: changed(&before.first_name, &after.first_name),
            last_name: changed(&before.last_name, &after.last_name),
            image_url: changed(&before.image_url, &after.image_url),
            email_verified_at: changed(&before.email_verified_at, &after.email_verified_at),
            rehashed_password: None,
            suspended_at: changed(&before.suspended_at, &after.suspended_at),
            system_role: changed(&before.system_role, &after.system_role),
            public_metadata: changed(&before.public_metadata, &after.public_metadata),
            private_metadata: changed(&before.private_metadata, &after.private_metadata),
            unlock: false,
            last_sign_in_at: changed(&before.last_sign_in_at, &after.last_sign_in_at).flatten(),
            updated_at: Some(after.updated_at),
        }
    }

    /// Applies the change to a copy (the in-memory store, and answers built from a copy).
    pub fn apply(&self, user: &mut UserRecord) {
        if let Some((ciphertext, digest)) = &self.email {
            user.email_ciphertext = ciphertext.clone();
            user.email_digest = digest.clone();
        }
        let set = |target: &mut Option<String>, value: &Option<Option<String>>| {
            if let Some(value) = value {
                target.clone_from(value);
            }
        };
        set(&mut user.username, &self.username);
        set(&mut user.first_name, &self.first_name);
        set(&mut user.last_name, &self.last_name);
        set(&mut user.image_url, &self.image_url);
        set(&mut user.system_role, &self.system_role);
        if let Some(value) = self.email_verified_at {
            user.email_verified_at = value;
        }
        if let Some(hash) = &self.rehashed_password {
            user.password_hash = Some(hash.clone());
        }
        if let Some(value) = self.suspended_at {
            user.suspended_at = value;
        }
        if let Some(value) = &self.public_metadata {
            user.public_metadata.clone_from(value);
        }
        if let Some(value) = &self.private_metadata {
            user.private_metadata.clone_from(value);
        }
        if self.unlock {
            user.failed_sign_in_attempts = 0;
            user.locked_until = None;
        }
        if let Some(at) = self.last_sign_in_at {
            user.last_sign_in_at = Some(at);
        }
        if let Some(at) = self.updated_at {
            user.updated_at = at;
        }
    }
}

/// A new password for a user, written only if the stored hash is still `replaces` (the one
/// the caller checked or read): a change that lost a race to another fails instead of
/// silently undoing it.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    pub user_id: String,
    /// The hash this change replaces (`None`: the user had no password).
    pub replaces: Option<String>,
    pub new_hash: String,
    pub at: i64,
    /// A reset proves the mailbox: the address counts as verified, and the lock is lifted.
    pub by_reset: bool,
}

impl UserRecord {
    /// A new account's row: this id, created now, with no address, name, password, role or
    /// security state yet, and empty metadata.
    pub fn new(id: String, now: i64) -> UserRecord {
        UserRecord {
            id,
            email_ciphertext: None,
            email_digest: None,
            username: None,
            first_name: None,
            last_name: None,
            image_url: None,
            email_verified_at: None,
            password_hash: None,
            password_changed_at: None,
            failed_sign_in_attempts: 0,
            locked_until: None,
            suspended_at: None,
            last_sign_in_at: None,
            public_metadata: "{}".into(),
            private_metadata: "{}".into(),
            system_role: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What a failed sign-in left on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedSignIn {
    pub attempts: i64,
    pub locked_until: Option<i64>,
    /// Whether this failure started the lock (its `on_lock` work was written).
    pub lock_started: bool,
}

/// How a sign-in names the account: the email's blind index or the normalised username.
#[derive(Debug, Clone, Copy)]
pub enum UserLookup<'a> {
    EmailDigest(&'a [u8]),
    Username(&'a str),
}

/// What a password sign-in needs to know besides the account, read in the same query (one
/// round trip instead of three on the hot path): whether the user has a confirmed second
/// factor, and whether they have signed in before from any device and from this one (the
/// new-device notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInFacts {
    pub has_confirmed_factor: bool,
    pub any_known_device: bool,
    pub this_device_known: bool,
}

/// A page of users: ids strictly after `after`, in id order (ids are time-ordered).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub after: Option<String>,
    pub email_digest: Option<Vec<u8>>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_between_two_copies_names_only_what_changed_and_never_the_security_state() {
        let before = UserRecord {
            password_hash: Some("old".into()),
            failed_sign_in_attempts: 3,
            ..UserRecord::new("usr_1".into(), 10)
        };
        let mut after = before.clone();
        after.first_name = Some("Ada".into());
        after.password_hash = Some("from a stale copy".into());
        after.failed_sign_in_attempts = 0;
        after.updated_at = 20;
        let change = UserChange::between(&before, &after);
        assert_eq!(
            change,
            UserChange {
                first_name: Some(Some("Ada".into())),
                updated_at: Some(20),
                ..UserChange::default()
            }
        );
        // Applied to the row as stored now (suspended and made admin meanwhile), it keeps both.
        let mut stored = UserRecord {
            suspended_at: Some(15),
            system_role: Some(SYSTEM_ROLE_ADMIN.into()),
            ..before.clone()
        };
        change.apply(&mut stored);
        assert_eq!(stored.first_name.as_deref(), Some("Ada"));
        assert_eq!((stored.suspended_at, stored.system_role.as_deref()), (Some(15), Some("admin")));
        assert_eq!(
            (stored.password_hash.as_deref(), stored.failed_sign_in_attempts),
            (Some("old"), 3)
        );
    }
}
