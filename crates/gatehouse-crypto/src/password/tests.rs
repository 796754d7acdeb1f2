//! Tests of the password hasher, with small Argon2 parameters except where defaults are checked.

use super::*;
use argon2::{PasswordHasher as _, PasswordVerifier as _};

fn small() -> Argon2Settings {
    Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 }
}

fn hasher_with(master: &MasterKey, settings: Argon2Settings, pepper_id: u8) -> PasswordHasher {
    PasswordHasher::new(settings, Pepper::from_master(master, pepper_id), vec![]).unwrap()
}

#[test]
fn defaults_are_the_production_settings() {
    assert_eq!(
        Argon2Settings::default(),
        Argon2Settings { memory_kib: 65536, iterations: 3, parallelism: 4 }
    );
}

#[test]
fn settings_deserialize_with_defaults_and_reject_unknown_keys() {
    let partial: Argon2Settings = serde_json::from_str(r#"{"memory_kib": 19456}"#).unwrap();
    assert_eq!(partial.memory_kib, 19456);
    assert_eq!(partial.iterations, 3);
    assert!(serde_json::from_str::<Argon2Settings>(r#"{"memory": 1}"#).is_err());
}

#[test]
fn hash_has_the_documented_phc_shape() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let phc = hasher.hash(b"correct horse").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1,keyid=AQ$"), "{phc}");
    let parsed = PasswordHash::new(&phc).unwrap();
    assert_eq!(parsed.salt.unwrap().decode_b64(&mut [0u8; 64]).unwrap().len(), 16);
    assert_eq!(parsed.hash.unwrap().len(), 32);
    assert_ne!(phc, hasher.hash(b"correct horse").unwrap(), "salts are random");
}

#[test]
fn plain_argon2_verifies_our_hash_given_the_peppered_input() {
    let master = MasterKey::generate();
    let hasher = hasher_with(&master, small(), 7);
    let phc = hasher.hash(b"correct horse").unwrap();
    let parsed = PasswordHash::new(&phc).unwrap();
    assert_eq!(Params::try_from(&parsed).unwrap().keyid(), &[7]);
    let pepper_key = master.derive("password-pepper/7");
    let input = hmac_sha256(&pepper_key, b"correct horse");
    assert!(Argon2::default().verify_password(&input, &parsed).is_ok());
    assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_err());
}

#[test]
fn verify_accepts_right_and_rejects_wrong_password() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let phc = hasher.hash(b"correct horse").unwrap();
    assert!(hasher.verify(b"correct horse", &phc).unwrap());
    assert!(!hasher.verify(b"correct horsE", &phc).unwrap());
    assert!(!hasher.verify(b"", &phc).unwrap());
}

#[test]
fn same_pepper_id_from_another_master_key_does_not_verify() {
    let phc = hasher_with(&MasterKey::generate(), small(), 1).hash(b"pw").unwrap();
    let other = hasher_with(&MasterKey::generate(), small(), 1);
    assert!(!other.verify(b"pw", &phc).unwrap());
}

#[test]
fn unparsable_or_foreign_hashes_are_invalid() {
    // Argon2 without `keyid` and bcrypt are legacy formats now: see `legacy::tests`.
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let phc = hasher.hash(b"pw").unwrap();
    let argon2i = phc.replace("$argon2id$", "$argon2i$");
    for bad in ["", "not a hash", "$argon2id$v=19$m=1024,t=1,p=1$$", argon2i.as_str()] {
        assert!(matches!(hasher.verify(b"pw", bad), Err(CryptoError::InvalidHash)), "{bad}");
        assert!(hasher.needs_rehash(bad), "{bad}");
    }
}

#[test]
fn unknown_pepper_id_is_an_invalid_hash() {
    let master = MasterKey::generate();
    let phc = hasher_with(&master, small(), 9).hash(b"pw").unwrap();
    let hasher = hasher_with(&master, small(), 1);
    assert!(matches!(hasher.verify(b"pw", &phc), Err(CryptoError::InvalidHash)));
}

#[test]
fn too_long_passwords_are_refused() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let longest = vec![b'a'; PasswordHasher::MAX_PASSWORD_BYTES];
    let too_long = vec![b'a'; PasswordHasher::MAX_PASSWORD_BYTES + 1];
    let phc = hasher.hash(&longest).unwrap();
    assert!(hasher.verify(&longest, &phc).unwrap());
    assert!(matches!(hasher.hash(&too_long), Err(CryptoError::PasswordTooLong)));
    assert!(matches!(hasher.verify(&too_long, &phc), Err(CryptoError::PasswordTooLong)));
}

#[test]
fn needs_rehash_when_parameters_change() {
    let master = MasterKey::generate();
    let phc = hasher_with(&master, small(), 1).hash(b"pw").unwrap();
    assert!(!hasher_with(&master, small(), 1).needs_rehash(&phc));
    for changed in [
        Argon2Settings { memory_kib: 2048, ..small() },
        Argon2Settings { iterations: 2, ..small() },
        Argon2Settings { parallelism: 2, ..small() },
    ] {
        let hasher = hasher_with(&master, changed.clone(), 1);
        assert!(hasher.needs_rehash(&phc), "{changed:?}");
        // Old parameters still verify: the hash carries its own.
        assert!(hasher.verify(b"pw", &phc).unwrap());
    }
}

#[test]
fn pepper_rotation_keeps_old_hashes_verifying_and_asks_for_rehash() {
    let master = MasterKey::generate();
    let old_phc = hasher_with(&master, small(), 1).hash(b"pw").unwrap();
    let rotated = PasswordHasher::new(
        small(),
        Pepper::from_master(&master, 2),
        vec![Pepper::from_master(&master, 1)],
    )
    .unwrap();
    assert!(rotated.verify(b"pw", &old_phc).unwrap());
    assert!(!rotated.verify(b"wrong", &old_phc).unwrap());
    assert!(rotated.needs_rehash(&old_phc));
    let new_phc = rotated.hash(b"pw").unwrap();
    assert!(new_phc.contains(",keyid=Ag$"), "{new_phc}");
    assert!(!rotated.needs_rehash(&new_phc));
}

#[test]
fn invalid_settings_and_duplicate_pepper_ids_are_refused() {
    let master = MasterKey::generate();
    for bad in [
        Argon2Settings { memory_kib: 1, ..small() },
        Argon2Settings { iterations: 0, ..small() },
        Argon2Settings { parallelism: 0, ..small() },
    ] {
        assert!(matches!(
            PasswordHasher::new(bad, Pepper::from_master(&master, 1), vec![]),
            Err(CryptoError::InvalidSettings(_))
        ));
    }
    assert!(matches!(
        PasswordHasher::new(
            small(),
            Pepper::from_master(&master, 1),
            vec![Pepper::from_master(&master, 1)]
        ),
        Err(CryptoError::InvalidSettings(_))
    ));
}

#[test]
fn dummy_verify_runs_against_a_real_hash() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    assert!(!hasher.needs_rehash(hasher.dummy_hash()));
    assert!(!hasher.verify(b"anything", hasher.dummy_hash()).unwrap());
    hasher.dummy_verify(b"anything");
}

#[test]
fn debug_output_redacts_pepper_keys() {
    let master = MasterKey::generate();
    let hasher = hasher_with(&master, small(), 3);
    let shown = format!("{hasher:?}");
    assert!(shown.contains("Pepper(id: 3, key: [redacted])"), "{shown}");
    let key_bytes = master.derive("password-pepper/3");
    assert!(!shown.contains(&format!("{:?}", key_bytes.as_ref())));
}

/// The PHC string we format ourselves (to compute in reusable memory) is the one `argon2`'s
/// own `hash_password` makes for the same salt and input, byte for byte.
#[test]
fn our_phc_string_is_the_one_argon2_makes() {
    let master = MasterKey::generate();
    for settings in [small(), Argon2Settings { memory_kib: 2048, iterations: 2, parallelism: 2 }] {
        let hasher = hasher_with(&master, settings, 5);
        let input = hmac_sha256(&master.derive("password-pepper/5"), b"correct horse");
        let salt = [0x11u8; SALT_BYTES];
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, hasher.params.clone())
            .hash_password(&input, &SaltString::encode_b64(&salt).unwrap())
            .unwrap()
            .to_string();
        assert_eq!(hasher.hash_peppered(&input, &salt, None).unwrap(), reference);
        let mut memory = Argon2Memory::default();
        assert_eq!(hasher.hash_peppered(&input, &salt, Some(&mut memory)).unwrap(), reference);
        // And again in the same, now used, memory.
        assert_eq!(hasher.hash_peppered(&input, &salt, Some(&mut memory)).unwrap(), reference);
    }
}

#[test]
fn plain_argon2_verifies_a_hash_made_in_reused_memory() {
    let master = MasterKey::generate();
    let hasher = hasher_with(&master, small(), 1);
    let mut memory = Argon2Memory::default();
    let input = hmac_sha256(&master.derive("password-pepper/1"), b"pw");
    for _ in 0..3 {
        let phc = hasher.hash_in(b"pw", Some(&mut memory)).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(&input, &parsed).is_ok(), "{phc}");
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_err());
        assert!(hasher.verify_in(b"pw", &phc, Some(&mut memory)).unwrap());
        assert!(!hasher.verify_in(b"pW", &phc, Some(&mut memory)).unwrap());
    }
    assert_eq!(memory.blocks.len(), hasher.params.block_count());
}

/// Hashes made under other parameters verify in a worker's memory: smaller ones use part
/// of it, larger ones a buffer of their own (the worker's memory does not grow).
#[test]
fn hashes_with_other_parameters_verify_in_worker_memory() {
    let master = MasterKey::generate();
    let hasher = hasher_with(&master, Argon2Settings { memory_kib: 2048, ..small() }, 1);
    let mut memory = Argon2Memory::default();
    for settings in [
        small(),
        Argon2Settings { memory_kib: 4096, iterations: 2, parallelism: 2 },
        Argon2Settings { memory_kib: 2048, iterations: 1, parallelism: 4 },
    ] {
        let phc = hasher_with(&master, settings.clone(), 1).hash(b"pw").unwrap();
        assert!(hasher.verify_in(b"pw", &phc, Some(&mut memory)).unwrap(), "{settings:?}");
        assert!(!hasher.verify_in(b"nope", &phc, Some(&mut memory)).unwrap(), "{settings:?}");
        assert_eq!(memory.blocks.len(), 2048, "{settings:?}");
    }
    // Argon2 version 0x10 with our pepper: the version is taken from the hash.
    let input = hmac_sha256(&master.derive("password-pepper/1"), b"pw");
    let old = Argon2::new(Algorithm::Argon2id, Version::V0x10, hasher.params.clone())
        .hash_password(&input, &SaltString::encode_b64(&[7u8; 16]).unwrap())
        .unwrap()
        .to_string();
    assert!(old.starts_with("$argon2id$v=16$"), "{old}");
    assert!(hasher.verify_in(b"pw", &old, Some(&mut memory)).unwrap());
    assert!(!hasher.verify_in(b"nope", &old, Some(&mut memory)).unwrap());
    assert!(hasher.verify(b"pw", &old).unwrap());
    // A foreign (unpeppered) Argon2 hash goes to the legacy verifier.
    let foreign = Argon2::default()
        .hash_password(b"pw", &SaltString::encode_b64(&[9u8; 16]).unwrap())
        .unwrap()
        .to_string();
    assert!(hasher.verify_in(b"pw", &foreign, Some(&mut memory)).unwrap());
    assert!(!hasher.verify_in(b"nope", &foreign, Some(&mut memory)).unwrap());
}

#[test]
fn verify_in_memory_rejects_what_verify_rejects() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let phc = hasher.hash(b"pw").unwrap();
    let mut memory = Argon2Memory::default();
    let argon2i = phc.replace("$argon2id$", "$argon2i$");
    let bad_version = phc.replace("$v=19$", "$v=18$");
    for bad in ["", "not a hash", argon2i.as_str(), bad_version.as_str()] {
        assert!(
            matches!(
                hasher.verify_in(b"pw", bad, Some(&mut memory)),
                Err(CryptoError::InvalidHash)
            ),
            "{bad}"
        );
        assert!(matches!(hasher.verify(b"pw", bad), Err(CryptoError::InvalidHash)), "{bad}");
    }
    // A truncated output is a wrong password for both, as `verify_password` had it.
    let truncated = &phc[..phc.len() - 3];
    assert!(!hasher.verify_in(b"pw", truncated, Some(&mut memory)).unwrap());
    assert!(!hasher.verify(b"pw", truncated).unwrap());
}

#[test]
fn dummy_verify_in_memory_uses_the_configured_parameters() {
    let hasher = hasher_with(&MasterKey::generate(), small(), 1);
    let mut memory = Argon2Memory::default();
    hasher.dummy_verify_in(b"anything", Some(&mut memory));
    assert!(!hasher.needs_rehash(hasher.dummy_hash()));
    assert_eq!(memory.blocks.len(), hasher.params.block_count());
}
