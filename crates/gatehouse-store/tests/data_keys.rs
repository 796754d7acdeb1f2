//! The key hierarchy on real SQLite and PostgreSQL: an installation from before the hierarchy
//! adopts the keys its master key derived (same digests, same hashes, its sealed values and
//! signing keys still open), instances starting together agree on one set of keys, a missing
//! master key is named, and reseal rewraps every key once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_crypto::{
    Argon2Settings, Digester, FieldCipher, MasterKey, MasterKeyRing, PasswordHasher, Pepper,
    SigningAlgorithm,
};
use gatehouse_domain::data_keys::{
    DataKeyError, DataKeyStore, KeyHierarchy, PEPPER_PURPOSE, ResealOutcome, cipher_purpose,
    digest_purpose,
};
use gatehouse_domain::keys::SIGNING_KEY_PURPOSE;
use gatehouse_domain::{KeyService, KeySettings, ManualClock};
use gatehouse_store::backend_tests;
use gatehouse_store::testing::TestDatabase;

fn purposes() -> Vec<String> {
    vec![
        digest_purpose("email"),
        digest_purpose("refresh-token"),
        cipher_purpose("mfa-totp"),
        cipher_purpose(SIGNING_KEY_PURPOSE),
        PEPPER_PURPOSE.to_owned(),
    ]
}

fn hierarchy(test: &TestDatabase, current: &MasterKey, previous: &[MasterKey]) -> KeyHierarchy {
    KeyHierarchy::new(
        Arc::new(test.database.clone()),
        Arc::new(test.database.clone()),
        MasterKeyRing::new(current.clone(), previous.to_vec()),
        Arc::new(ManualClock::new(1_000_000)),
    )
}

fn key_service(test: &TestDatabase, cipher: FieldCipher) -> KeyService {
    KeyService::new(
        Arc::new(test.database.clone()),
        Arc::new(cipher),
        Arc::new(ManualClock::new(1_000_000)),
        KeySettings {
            algorithm: SigningAlgorithm::ES256,
            rsa_bits: 2048,
            retention_seconds: 960,
            cache_seconds: 0,
            rotation_delay_seconds: 0,
        },
    )
}

fn hasher(pepper: Pepper, previous: Vec<Pepper>) -> PasswordHasher {
    let settings = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
    PasswordHasher::new(settings, pepper, previous).unwrap()
}

backend_tests!(
    an_installation_from_before_the_hierarchy_keeps_its_digests_hashes_and_sealed_values,
    instances_starting_together_agree_on_random_keys,
    reseal_rewraps_each_key_once_after_which_the_old_master_key_can_go,
);

async fn an_installation_from_before_the_hierarchy_keeps_its_digests_hashes_and_sealed_values(
    test: TestDatabase,
) {
    // What the server stored before the hierarchy, everything derived from the master key K1.
    let old = MasterKey::generate();
    let legacy_signing = key_service(&test, FieldCipher::new(&old, &[], SIGNING_KEY_PURPOSE));
    let kid = legacy_signing.ensure_active_key().await.unwrap().kid;
    let email_digest = Digester::new(&old, "email").digest(b"ada@example.com");
    let refresh_digest = Digester::new(&old, "refresh-token").digest(b"ghr_token");
    let sealed_totp = FieldCipher::new(&old, &[], "mfa-totp").seal(b"mfa_1", b"JBSWY3DP").unwrap();
    let password_hash =
        hasher(Pepper::from_master(&old, 1), vec![]).hash(b"hunter2 hunter2").unwrap();

    // The first start after the upgrade is also the first with a new master key K2 (K1 as
    // previous): the keys are still K1's, wrapped under K2.
    let new = MasterKey::generate();
    let keys = hierarchy(&test, &new, std::slice::from_ref(&old)).open(&purposes()).await.unwrap();
    assert_eq!(keys.digester("email").unwrap().digest(b"ada@example.com"), email_digest);
    assert_eq!(keys.digester("refresh-token").unwrap().digest(b"ghr_token"), refresh_digest);
    let totp = keys.cipher("mfa-totp").unwrap();
    assert_eq!(totp.open(b"mfa_1", &sealed_totp).unwrap().as_slice(), b"JBSWY3DP");
    let (pepper, previous) = keys.peppers().unwrap();
    assert_eq!(pepper.id(), 1, "the adopted pepper keeps the id the stored hashes carry");
    assert!(hasher(pepper, previous).verify(b"hunter2 hunter2", &password_hash).unwrap());
    let signing = key_service(&test, keys.cipher(SIGNING_KEY_PURPOSE).unwrap());
    assert_eq!(signing.active_signer().await.unwrap().kid(), kid);
    let stored = test.database.list_data_keys().await.unwrap();
    assert_eq!(stored.len(), purposes().len());
    assert!(stored.iter().all(|key| key.wrapped_by == i64::from(new.id())));
    for key in &stored {
        let plaintext_of_email_key = *old.derive("digest/email");
        assert!(
            !key.wrapped_key.windows(32).any(|window| window == plaintext_of_email_key),
            "data keys are stored wrapped"
        );
    }

    // K2 alone opens them now; K1 alone no longer does, and says which key is missing.
    let reopened = hierarchy(&test, &new, &[]).open(&purposes()).await.unwrap();
    assert_eq!(reopened.digester("email").unwrap().digest(b"ada@example.com"), email_digest);
    let error = hierarchy(&test, &old, &[]).open(&purposes()).await.err().unwrap();
    match error {
        DataKeyError::MasterKeyMissing { wrapped_by, .. } => assert_eq!(wrapped_by, new.id()),
        other => panic!("expected MasterKeyMissing, got {other:?}"),
    }
}

async fn instances_starting_together_agree_on_random_keys(test: TestDatabase) {
    let master = MasterKey::generate();
    let (first, second) = tokio::join!(
        async { hierarchy(&test, &master, &[]).open(&purposes()).await.unwrap() },
        async { hierarchy(&test, &master, &[]).open(&purposes()).await.unwrap() },
    );
    assert_eq!(
        first.digester("email").unwrap().digest(b"x"),
        second.digester("email").unwrap().digest(b"x")
    );
    let sealed = first.cipher("mfa-totp").unwrap().seal(b"ad", b"secret").unwrap();
    assert_eq!(
        second.cipher("mfa-totp").unwrap().open(b"ad", &sealed).unwrap().as_slice(),
        b"secret"
    );
    // A new installation does not use keys derived from its master key.
    assert_ne!(
        first.digester("email").unwrap().digest(b"x"),
        Digester::new(&master, "email").digest(b"x")
    );
    // A purpose added by a later version gets its own key; the others stay as they were.
    let mut more = purposes();
    more.push(digest_purpose("webhook-secret"));
    let later = hierarchy(&test, &master, &[]).open(&more).await.unwrap();
    assert_eq!(
        later.digester("email").unwrap().digest(b"x"),
        first.digester("email").unwrap().digest(b"x")
    );
    assert!(later.digester("webhook-secret").is_ok());
    assert!(matches!(first.digester("webhook-secret"), Err(DataKeyError::Undeclared(_))));
}

async fn reseal_rewraps_each_key_once_after_which_the_old_master_key_can_go(test: TestDatabase) {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let before = hierarchy(&test, &old, &[]).open(&purposes()).await.unwrap();
    let digest = before.digester("email").unwrap().digest(b"x");

    // Without the old key, the new one alone is refused, naming the key that wrapped them.
    let error = hierarchy(&test, &new, &[]).open(&purposes()).await.err().unwrap();
    assert!(error.to_string().contains(&format!("{:08x}", old.id())), "{error}");

    let rotating = hierarchy(&test, &new, std::slice::from_ref(&old));
    let mut steps = Vec::new();
    let report = rotating.reseal(&mut |step| steps.push(step.outcome)).await.unwrap();
    assert_eq!((report.total, report.resealed, report.already_current), (5, 5, 0));
    assert_eq!(steps, vec![ResealOutcome::Resealed; 5]);
    let again = rotating.reseal(&mut |_| {}).await.unwrap();
    assert_eq!((again.resealed, again.already_current), (0, 5), "reseal is idempotent");

    let after = hierarchy(&test, &new, &[]).open(&purposes()).await.unwrap();
    assert_eq!(after.digester("email").unwrap().digest(b"x"), digest, "no key changed");
    assert!(hierarchy(&test, &old, &[]).open(&purposes()).await.is_err());
}
