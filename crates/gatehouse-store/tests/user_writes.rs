//! User writes from stale copies (#19, finding 2) against real SQLite and PostgreSQL: a write
//! sets only the columns it names, so a copy read before someone else's change never undoes
//! it; a password change is conditional on the hash it replaces; a session is written only
//! for a user who is not suspended, in the same transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_domain::email_links::record::{OneTimeTokenRecord, TokenPurpose};
use gatehouse_domain::sessions::{RefreshTokenRecord, RevokeReason, SessionRecord, SessionStore};
use gatehouse_domain::unit_of_work::{SpentToken, UnitOfWork};
use gatehouse_domain::users::record::{PasswordChange, UserChange};
use gatehouse_domain::{Conflict, StoreError, UserRecord, UserStore};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;

const OLD_HASH: &str = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$b2xk";

fn user(id: &str) -> UserRecord {
    UserRecord {
        email_ciphertext: Some(vec![9, 9, 9]),
        email_digest: Some(id.as_bytes().to_vec()),
        first_name: Some("Ada".into()),
        password_hash: Some(OLD_HASH.into()),
        password_changed_at: Some(10),
        ..UserRecord::new(id.into(), 10)
    }
}

async fn stored(store: &TestDatabase, id: &str) -> UserRecord {
    store.database.user_by_id(id).await.unwrap().unwrap()
}

backend_tests!(
    a_write_from_a_stale_copy_keeps_what_others_changed,
    a_password_change_that_lost_the_race_writes_nothing,
    a_session_is_never_written_for_a_suspended_user,
);

async fn a_write_from_a_stale_copy_keeps_what_others_changed(test: TestDatabase) {
    let store = &test.database;
    store.insert_user(&user("usr_1"), &UnitOfWork::default()).await.unwrap();
    // A profile update reads the row...
    let copy = stored(&test, "usr_1").await;
    // ...then an admin makes the user an admin and suspends them, and a reset sets a new
    // password...
    let admin = UserChange {
        system_role: Some(Some("admin".into())),
        suspended_at: Some(Some(20)),
        updated_at: Some(20),
        ..UserChange::default()
    };
    store.update_user("usr_1", &admin, &UnitOfWork::default()).await.unwrap();
    let reset = PasswordChange {
        user_id: "usr_1".into(),
        replaces: Some(OLD_HASH.into()),
        new_hash: "new-hash".into(),
        at: 21,
        by_reset: true,
    };
    store
        .change_password(&reset, 5, None, RevokeReason::PasswordReset, &UnitOfWork::default())
        .await
        .unwrap();
    // ...and the profile update writes what it changed on its copy: only that.
    let mut edited = copy.clone();
    edited.first_name = Some("Grace".into());
    edited.updated_at = 22;
    store
        .update_user("usr_1", &UserChange::between(&copy, &edited), &UnitOfWork::default())
        .await
        .unwrap();
    let now = stored(&test, "usr_1").await;
    assert_eq!(now.first_name.as_deref(), Some("Grace"));
    assert_eq!(now.system_role.as_deref(), Some("admin"), "the role change stands");
    assert_eq!(now.suspended_at, Some(20), "the suspension stands");
    assert_eq!(now.password_hash.as_deref(), Some("new-hash"), "the reset stands");
    assert_eq!(now.email_verified_at, Some(21), "a reset verifies the address");
    assert_eq!(now.updated_at, 22);
}

async fn a_password_change_that_lost_the_race_writes_nothing(test: TestDatabase) {
    let store = &test.database;
    store.insert_user(&user("usr_1"), &UnitOfWork::default()).await.unwrap();
    let change = |new_hash: &str, at: i64| PasswordChange {
        user_id: "usr_1".into(),
        replaces: Some(OLD_HASH.into()),
        new_hash: new_hash.into(),
        at,
        by_reset: false,
    };
    // Two changes both checked the old password; the first wins.
    store
        .change_password(
            &change("first", 20),
            5,
            None,
            RevokeReason::PasswordChanged,
            &UnitOfWork::default(),
        )
        .await
        .unwrap();
    // The second, with a reset token to spend, fails as a whole: no hash, no spent token.
    let token = OneTimeTokenRecord {
        token_digest: b"reset-token".to_vec(),
        purpose: TokenPurpose::ResetPassword.as_str().to_owned(),
        user_id: "usr_1".into(),
        email_digest: None,
        created_at: 15,
        expires_at: 1000,
        used_at: None,
        payload: None,
    };
    store
        .update_user(
            "usr_1",
            &UserChange::default(),
            &UnitOfWork { tokens: vec![token], ..UnitOfWork::default() },
        )
        .await
        .unwrap();
    let work = UnitOfWork {
        spend_token: Some(SpentToken { digest: b"reset-token".to_vec(), at: 30 }),
        ..UnitOfWork::default()
    };
    let error = store
        .change_password(&change("second", 30), 5, None, RevokeReason::PasswordReset, &work)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(Conflict::PasswordReplaced)), "{error:?}");
    let now = stored(&test, "usr_1").await;
    assert_eq!((now.password_hash.as_deref(), now.password_changed_at), (Some("first"), Some(20)));
    // The token was not spent: spending it now still works.
    store
        .update_user("usr_1", &UserChange::default(), &work)
        .await
        .expect("the failed change rolled the spend back");
    // Only the first change's replaced hash is in the history.
    assert_eq!(store.password_history("usr_1", 10).await.unwrap(), [OLD_HASH]);
}

async fn a_session_is_never_written_for_a_suspended_user(test: TestDatabase) {
    let store = &test.database;
    store.insert_user(&user("usr_1"), &UnitOfWork::default()).await.unwrap();
    let session = |id: &str| SessionRecord {
        id: id.into(),
        user_id: "usr_1".into(),
        user_agent: None,
        ip: None,
        created_at: 50,
        last_used_at: 50,
        expires_at: 5000,
        revoked_at: None,
        revoked_reason: None,
        client_id: None,
        scope: None,
        auth_time: Some(50),
        nonce: None,
        amr: Some("pwd".into()),
        organization_id: None,
        impersonator: None,
        dpop_jkt: None,
        resources: Vec::new(),
    };
    let refresh = |digest: &[u8], id: &str| RefreshTokenRecord {
        token_digest: digest.to_vec(),
        session_id: id.into(),
        created_at: 50,
        expires_at: 500,
        rotated_at: None,
    };
    let sign_in = UserChange {
        unlock: true,
        last_sign_in_at: Some(50),
        updated_at: Some(50),
        ..UserChange::default()
    };
    // A sign-in answers the row as stored, with a role granted since the password was checked.
    let role = UserChange { system_role: Some(Some("admin".into())), ..UserChange::default() };
    store.update_user("usr_1", &role, &UnitOfWork::default()).await.unwrap();
    let fresh = store
        .start_session(
            &session("ses_1"),
            Some(&refresh(b"r1", "ses_1")),
            &sign_in,
            &UnitOfWork::default(),
        )
        .await
        .unwrap();
    assert_eq!((fresh.system_role.as_deref(), fresh.last_sign_in_at), (Some("admin"), Some(50)));
    // Suspended (sessions revoked), then a sign-in whose password check came before it:
    // nothing is written, and the suspension stands.
    let suspend =
        UserChange { suspended_at: Some(Some(60)), updated_at: Some(60), ..UserChange::default() };
    let revoked = store
        .update_user_revoking_sessions(
            "usr_1",
            &suspend,
            RevokeReason::UserSuspended,
            &UnitOfWork::default(),
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    let error = store
        .start_session(
            &session("ses_2"),
            Some(&refresh(b"r2", "ses_2")),
            &sign_in,
            &UnitOfWork::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(Conflict::UserNotActive)), "{error:?}");
    assert!(store.session("ses_2").await.unwrap().is_none());
    assert!(store.refresh_token(b"r2").await.unwrap().is_none());
    let now = stored(&test, "usr_1").await;
    assert_eq!((now.suspended_at, now.last_sign_in_at), (Some(60), Some(50)));
}
