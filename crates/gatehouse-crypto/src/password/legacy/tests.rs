//! Tests of legacy hash verification, with published vectors where they exist and hashes made
//! by each format's own crate otherwise.

use argon2::password_hash::{PasswordHasher as _, SaltString};
use argon2::{Algorithm, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use secrecy::SecretString;

use super::*;
use crate::{Argon2Settings, HashingPool, MasterKey, Pepper};

/// OpenBSD / Openwall bcrypt vectors (cost 5).
const BCRYPT_U_U: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
const BCRYPT_U_U_STAR: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK";
/// Django 1.5's test vector for "lètmein" (Django 1.4's, ASCII "letmein", is below).
const DJANGO_LETMEIN_ACCENT: &str =
    "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=";
const DJANGO_LETMEIN: &str =
    "pbkdf2_sha256$10000$seasalt$FQCNpiZpTb0zub+HBsH6TOwyRxJ19FwvjbweatNmK/Y=";
/// The reference implementation's vectors (phc-winner-argon2 `src/test.c`), password
/// "password", salt "somesalt".
const ARGON2ID_REFERENCE: &str =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
const ARGON2I_REFERENCE: &str =
    "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
/// RFC 7914 section 12, second vector: scrypt("password", "NaCl", N = 1024, r = 8, p = 16).
const RFC7914_SCRYPT: [u8; 64] = [
    0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00, 0x78, 0x56, 0xe7, 0x19, 0x0d, 0x01, 0xe9, 0xfe,
    0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23, 0x78, 0x30, 0xe7, 0x73, 0x76, 0x63, 0x4b, 0x37, 0x31, 0x62,
    0x2e, 0xaf, 0x30, 0xd9, 0x2e, 0x22, 0xa3, 0x88, 0x6f, 0xf1, 0x09, 0x27, 0x9d, 0x98, 0x30, 0xda,
    0xc7, 0x27, 0xaf, 0xb9, 0x4a, 0x83, 0xee, 0x6d, 0x83, 0x60, 0xcb, 0xdf, 0xa2, 0xcc, 0x06, 0x40,
];

fn b64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

fn salt() -> SaltString {
    SaltString::encode_b64(b"sixteen byte salt").unwrap()
}

/// The RFC 7914 vector as a PHC string, as another system would have stored it.
fn scrypt_rfc_phc() -> String {
    format!("$scrypt$ln=10,r=8,p=16${}${}", b64(b"NaCl"), b64(&RFC7914_SCRYPT))
}

/// Django's "lètmein" vector re-encoded as a PHC string: the same PBKDF2 computation.
fn pbkdf2_sha256_from_django_vector() -> String {
    let hash = STANDARD.decode("CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=").unwrap();
    format!("$pbkdf2-sha256$i=10000,l=32${}${}", b64(b"seasalt"), b64(&hash))
}

fn scrypt_made_here(password: &[u8]) -> String {
    let params = scrypt::Params::new(4, 8, 1, 32).unwrap();
    Scrypt.hash_password_customized(password, None, None, params, &salt()).unwrap().to_string()
}

fn pbkdf2_made_here(password: &[u8], algorithm: pbkdf2::Algorithm) -> String {
    let params = pbkdf2::Params { rounds: 1_000, output_length: 64 };
    Pbkdf2
        .hash_password_customized(password, Some(algorithm.ident()), None, params, &salt())
        .unwrap()
        .to_string()
}

fn django_made_here(password: &[u8], iterations: u32, salt: &str) -> String {
    let mut hash = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), iterations, &mut hash);
    format!("pbkdf2_sha256${iterations}${salt}${}", STANDARD.encode(hash))
}

fn argon2_made_here(password: &[u8], algorithm: Algorithm) -> String {
    let params = Params::new(1024, 1, 1, None).unwrap();
    Argon2::new(algorithm, Version::V0x13, params)
        .hash_password(password, &salt())
        .unwrap()
        .to_string()
}

fn hasher() -> PasswordHasher {
    let settings = Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 };
    PasswordHasher::new(settings, Pepper::from_master(&MasterKey::generate(), 1), vec![]).unwrap()
}

/// (hash, right password, format): one or more per format, vectors first.
fn right_passwords() -> Vec<(String, &'static [u8], LegacyFormat)> {
    use LegacyFormat::*;
    vec![
        (BCRYPT_U_U.to_owned(), b"U*U", Bcrypt),
        (BCRYPT_U_U_STAR.to_owned(), b"U*U*", Bcrypt),
        // $2b$ and $2y$ differ from $2a$ only in bugs of other implementations' 8-bit
        // handling; the computation for ASCII passwords is the same.
        (BCRYPT_U_U.replace("$2a$", "$2b$"), b"U*U", Bcrypt),
        (BCRYPT_U_U.replace("$2a$", "$2y$"), b"U*U", Bcrypt),
        (bcrypt::hash("correct horse", 4).unwrap(), b"correct horse", Bcrypt),
        // The RFC 7914 vector is verified once, in its own test: it takes ~2 s unoptimised.
        (scrypt_made_here(b"correct horse"), b"correct horse", Scrypt),
        (pbkdf2_sha256_from_django_vector(), "lètmein".as_bytes(), Pbkdf2Sha256),
        (
            pbkdf2_made_here(b"correct horse", pbkdf2::Algorithm::Pbkdf2Sha256),
            b"correct horse",
            Pbkdf2Sha256,
        ),
        (
            pbkdf2_made_here(b"correct horse", pbkdf2::Algorithm::Pbkdf2Sha512),
            b"correct horse",
            Pbkdf2Sha512,
        ),
        (DJANGO_LETMEIN_ACCENT.to_owned(), "lètmein".as_bytes(), DjangoPbkdf2Sha256),
        (DJANGO_LETMEIN.to_owned(), b"letmein", DjangoPbkdf2Sha256),
        (django_made_here(b"correct horse", 1_000, "s4lt"), b"correct horse", DjangoPbkdf2Sha256),
        (ARGON2ID_REFERENCE.to_owned(), b"password", ForeignArgon2),
        (ARGON2I_REFERENCE.to_owned(), b"password", ForeignArgon2),
        (argon2_made_here(b"correct horse", Algorithm::Argon2d), b"correct horse", ForeignArgon2),
    ]
}

#[test]
fn django_vector_is_what_the_pbkdf2_crate_computes() {
    assert_eq!(django_made_here("lètmein".as_bytes(), 10_000, "seasalt"), DJANGO_LETMEIN_ACCENT);
    assert_eq!(django_made_here(b"letmein", 10_000, "seasalt"), DJANGO_LETMEIN);
}

#[test]
fn scrypt_rfc7914_vector_verifies_as_a_phc_string() {
    let phc = scrypt_rfc_phc();
    assert_eq!(detect(&phc), Some(LegacyFormat::Scrypt));
    assert!(hasher().verify(b"password", &phc).unwrap());
}

#[test]
fn every_format_is_detected_validated_and_verified_through_the_hasher() {
    let hasher = hasher();
    for (hash, password, format) in right_passwords() {
        assert_eq!(detect(&hash), Some(format), "{hash}");
        assert_eq!(validate_import(&hash).unwrap(), format, "{hash}");
        assert!(hasher.verify(password, &hash).unwrap(), "{hash}");
        let mut wrong = password.to_vec();
        wrong.push(b'!');
        assert!(!hasher.verify(&wrong, &hash).unwrap(), "{hash}");
        assert!(!hasher.verify(b"", &hash).unwrap(), "{hash}");
        assert!(hasher.needs_rehash(&hash), "{hash}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_verifies_through_the_pool() {
    let pool = HashingPool::new(hasher(), 2);
    let secret = |bytes: &[u8]| SecretString::from(String::from_utf8(bytes.to_vec()).unwrap());
    for (hash, password, _) in right_passwords() {
        assert!(pool.verify(secret(password), hash.clone()).await.unwrap(), "{hash}");
        assert!(!pool.verify(secret(b"wrong"), hash.clone()).await.unwrap(), "{hash}");
        assert!(pool.needs_rehash(&hash), "{hash}");
    }
}

#[test]
fn our_own_hash_is_not_legacy_but_stripping_its_keyid_does_not_bypass_the_pepper() {
    let hasher = hasher();
    let phc = hasher.hash(b"pw").unwrap();
    assert_eq!(detect(&phc), None);
    assert!(matches!(validate_import(&phc), Err(CryptoError::InvalidHash)));
    let without_keyid = phc.replace(",keyid=AQ", "");
    assert_eq!(detect(&without_keyid), Some(LegacyFormat::ForeignArgon2));
    // Verified unpeppered, the bare password does not match what was computed peppered.
    assert!(!hasher.verify(b"pw", &without_keyid).unwrap());
    assert!(hasher.needs_rehash(&without_keyid));
}

#[test]
fn bcrypt_counts_only_the_first_72_bytes() {
    let hasher = hasher();
    let seventy_two = [b'a'; 72];
    let hash = bcrypt::hash(seventy_two, 4).unwrap();
    let longer = [&seventy_two[..], b"anything after byte 72"].concat();
    assert!(hasher.verify(&longer, &hash).unwrap());
    assert!(!hasher.verify(&seventy_two[..71], &hash).unwrap());
}

#[test]
fn too_long_passwords_are_refused_for_legacy_hashes_too() {
    let hasher = hasher();
    let longest = vec![b'a'; PasswordHasher::MAX_PASSWORD_BYTES];
    let too_long = vec![b'a'; PasswordHasher::MAX_PASSWORD_BYTES + 1];
    for (hash, _, _) in right_passwords() {
        assert!(matches!(hasher.verify(&too_long, &hash), Err(CryptoError::PasswordTooLong)));
        assert!(matches!(verify_legacy(&too_long, &hash), Err(CryptoError::PasswordTooLong)));
    }
    assert!(!hasher.verify(&longest, BCRYPT_U_U).unwrap());
}

#[test]
fn unknown_formats_are_invalid_and_need_rehash() {
    let hasher = hasher();
    for unknown in [
        "$md5$rounds=1000$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA",
        "$sha512crypt$rounds=5000$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA",
        "$6$rounds=5000$saltsalt$WgUOIsAhgO1yq8Qn7ZwA7Zp3N1a9XGiYwH1cTdZ9C2",
        "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
        "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "pbkdf2_sha1$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
        "plain text",
    ] {
        assert_eq!(detect(unknown), None, "{unknown}");
        assert!(
            matches!(hasher.verify(b"pw", unknown), Err(CryptoError::InvalidHash)),
            "{unknown}"
        );
        assert!(
            matches!(verify_legacy(b"pw", unknown), Err(CryptoError::InvalidHash)),
            "{unknown}"
        );
        assert!(hasher.needs_rehash(unknown), "{unknown}");
    }
}

#[test]
fn malformed_and_out_of_bounds_hashes_do_not_verify() {
    let hasher = hasher();
    for bad in ["$2b$05$tooshort", "$2b$32$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"] {
        assert_eq!(detect(bad), Some(LegacyFormat::Bcrypt));
        assert!(matches!(hasher.verify(b"U*U", bad), Err(CryptoError::InvalidHash)), "{bad}");
        assert!(hasher.needs_rehash(bad));
    }
}

#[derive(Debug, PartialEq)]
enum Expected {
    Accepted(LegacyFormat),
    /// `InvalidHash`: unknown or malformed.
    Malformed,
    /// `InvalidSettings`: well-formed, cost out of bounds.
    OutOfBounds,
}

fn check(input: &str, expected: Expected) {
    let actual = match validate_import(input) {
        Ok(format) => Expected::Accepted(format),
        Err(CryptoError::InvalidHash) => Expected::Malformed,
        Err(CryptoError::InvalidSettings(_)) => Expected::OutOfBounds,
        Err(other) => panic!("{input}: unexpected error {other:?}"),
    };
    assert_eq!(actual, expected, "{input}");
    // Whatever the import refuses, sign-in refuses as an unusable hash, without computing.
    if !matches!(expected, Expected::Accepted(_)) {
        assert!(matches!(verify_legacy(b"pw", input), Err(CryptoError::InvalidHash)), "{input}");
    }
}

#[test]
fn validate_import_cases() {
    use Expected::*;
    use LegacyFormat::*;
    let bcrypt_body = &BCRYPT_U_U["$2a$05$".len()..];
    let salt = b64(b"somesalt");
    let output32 = b64(&[7u8; 32]);
    let scrypt = |params: &str| format!("$scrypt${params}${salt}${}", b64(&[7u8; 64]));
    let pbkdf2 = |params: &str| format!("$pbkdf2-sha256${params}${salt}${output32}");
    let django = |iterations: &str| {
        format!("pbkdf2_sha256${iterations}$seasalt${}", STANDARD.encode([7u8; 32]))
    };
    let argon2 = |params: &str| format!("$argon2id$v=19${params}${salt}${output32}");
    let cases: Vec<(String, Expected)> = vec![
        // bcrypt
        (format!("$2b$04${bcrypt_body}"), Accepted(Bcrypt)),
        (format!("$2y$16${bcrypt_body}"), Accepted(Bcrypt)),
        (format!("$2a$03${bcrypt_body}"), OutOfBounds),
        (format!("$2b$17${bcrypt_body}"), OutOfBounds),
        (format!("$2b$31${bcrypt_body}"), OutOfBounds),
        (format!("$2b$ab${bcrypt_body}"), Malformed),
        (format!("$2b$05${}", "!".repeat(53)), Malformed),
        (format!("$2b$05${bcrypt_body}x"), Malformed),
        ("$2b$05$".to_owned(), Malformed),
        // scrypt
        (scrypt_rfc_phc(), Accepted(Scrypt)),
        (scrypt("ln=20,r=8,p=1"), Accepted(Scrypt)),
        (scrypt("ln=21,r=8,p=1"), OutOfBounds),
        (scrypt("ln=20,r=8,p=2"), OutOfBounds),
        (scrypt("ln=10,r=8"), Malformed),
        (scrypt("ln=10,r=8,p=1,x=1"), Malformed),
        (scrypt("ln=10,r=0,p=1"), Malformed),
        (format!("$scrypt$ln=10,r=8,p=1${salt}"), Malformed),
        (format!("$scrypt$ln=10,r=8,p=1${salt}${}", b64(&[7u8; 65])), Malformed),
        // PBKDF2 PHC
        (pbkdf2("i=1000,l=32"), Accepted(Pbkdf2Sha256)),
        (pbkdf2("i=10000000"), Accepted(Pbkdf2Sha256)),
        (pbkdf2("i=999,l=32"), OutOfBounds),
        (pbkdf2("i=10000001,l=32"), OutOfBounds),
        (pbkdf2("l=32"), Malformed),
        (pbkdf2("i=1000,l=64"), Malformed),
        // Without `l` the crate assumes 32 bytes: fine for a 32-byte hash, never matching a
        // 64-byte one.
        (format!("$pbkdf2-sha512$i=1000${salt}${output32}"), Accepted(Pbkdf2Sha512)),
        (format!("$pbkdf2-sha512$i=1000${salt}${}", b64(&[7u8; 64])), Malformed),
        (format!("$pbkdf2-sha512$i=1000,l=32${salt}${output32}"), Accepted(Pbkdf2Sha512)),
        (format!("$pbkdf2-sha256$i=1000,l=32${salt}"), Malformed),
        // passlib's own (non-PHC) layout puts the rounds where PHC puts parameters.
        (format!("$pbkdf2-sha256$29000${salt}${output32}"), Malformed),
        // Django
        (DJANGO_LETMEIN.to_owned(), Accepted(DjangoPbkdf2Sha256)),
        (django("1000"), Accepted(DjangoPbkdf2Sha256)),
        (django("10000000"), Accepted(DjangoPbkdf2Sha256)),
        (django("999"), OutOfBounds),
        (django("10000001"), OutOfBounds),
        (django("+10000"), Malformed),
        (django(""), Malformed),
        (django("99999999999"), Malformed),
        ("pbkdf2_sha256$10000$$FQCNpiZpTb0zub+HBsH6TOwyRxJ19FwvjbweatNmK/Y=".to_owned(), Malformed),
        (
            "pbkdf2_sha256$10000$seasalt$FQCNpiZpTb0zub+HBsH6TOwyRxJ19FwvjbweatNmK/Y".to_owned(),
            Malformed,
        ),
        ("pbkdf2_sha256$10000$seasalt$c2hvcnQ=".to_owned(), Malformed),
        (
            "pbkdf2_sha256$10000$sea$salt$FQCNpiZpTb0zub+HBsH6TOwyRxJ19FwvjbweatNmK/Y=".to_owned(),
            Malformed,
        ),
        ("pbkdf2_sha256$10000$seasalt".to_owned(), Malformed),
        // Foreign Argon2
        (ARGON2ID_REFERENCE.to_owned(), Accepted(ForeignArgon2)),
        (argon2("m=2097152,t=2,p=4"), Accepted(ForeignArgon2)),
        (format!("$argon2d$v=16$m=1024,t=1,p=1${salt}${output32}"), Accepted(ForeignArgon2)),
        (argon2("m=4194304,t=1,p=4"), OutOfBounds),
        (argon2("m=2097152,t=3,p=4"), OutOfBounds),
        (argon2("m=8,t=1000000,p=1"), OutOfBounds),
        (argon2("m=1024,p=1"), Malformed),
        (argon2("m=7,t=1,p=1"), Malformed),
        (format!("$argon2id$v=18$m=1024,t=1,p=1${salt}${output32}"), Malformed),
        (format!("$argon2id$v=19$m=1024,t=1,p=1${salt}"), Malformed),
        (argon2("m=1024,t=1,p=1,keyid=AQ"), Malformed),
        // Neither
        (String::new(), Malformed),
        ("$unknown$v=1$x=1$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA".to_owned(), Malformed),
    ];
    for (input, expected) in cases {
        check(&input, expected);
    }
}

#[test]
fn out_of_bounds_messages_name_the_bound_not_the_hash() {
    let hash = format!("$2b$20${}", &BCRYPT_U_U["$2a$05$".len()..]);
    let Err(CryptoError::InvalidSettings(message)) = validate_import(&hash) else {
        panic!("expected InvalidSettings");
    };
    assert_eq!(message, "imported password hash: bcrypt cost 20 is outside 4..=16");
}
