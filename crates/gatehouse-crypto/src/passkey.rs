//! Passkeys (WebAuthn Level 3) through the maintained `webauthn-rs` crate: the relying party,
//! the options a browser passes to `PublicKeyCredential.parse*OptionsFromJSON`, and the
//! verification of what `credential.toJSON()` sends back. Nothing here is hand-rolled: the
//! ceremonies, the CBOR and COSE parsing and the signature checks are `webauthn-rs`'s.
//!
//! Ceremony state (the challenge and what it expects) leaves this module as opaque JSON bytes
//! for the caller to keep server-side, single-use, between the two requests of a ceremony.
//! A stored passkey is the crate's own serialised credential (its public key, counter, flags),
//! also opaque here; [`PasskeyFacts`] is what a user sees of it.
//!
//! User verification is *preferred*, as WebAuthn Level 3 recommends: a passkey that verified
//! its user (PIN, biometric) is a whole multi-factor sign-in; one whose authenticator cannot
//! (a security key without a PIN) is a first factor only, and callers ask for a second one.
//! A credential registered with user verification must keep verifying its user: an assertion
//! of it without verification is refused (webauthn-rs-core's rule for the preferred policy).
//!
//! The ceremonies run on `webauthn-rs-core` (the engine of `webauthn-rs`, same release): the
//! high-level `Webauthn` type fixes user verification to *required* for passkeys. Everything it
//! adds on top is kept here: the RP-id checks of its builder, the secure algorithms, the
//! credProps/uvm extensions, no attestation, challenges per ceremony kept server-side, and the
//! counter and backup-flag updates of `Passkey::update_credential`.

use serde_json::Value;
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    Credential, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::internals::AuthenticatorData;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, CredProtect,
    CredentialProtectionPolicy, Registration, RegistrationState, RequestRegistrationExtensions,
    UserVerificationPolicy,
};

/// Why a passkey ceremony failed. Messages name the check, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The relying-party settings cannot work (an IP address as RP id, an origin outside it).
    #[error("passkeys are not configured: {0}")]
    Configuration(String),
    /// The credential JSON is not a WebAuthn response we can read.
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// The response was read and failed a check (challenge, origin, RP id, signature, user
    /// verification, ...); the reason is one of a fixed set of words.
    #[error("WebAuthn response rejected: {0}")]
    Rejected(&'static str),
    /// The signature counter did not move forward: the credential may have been cloned.
    #[error("the credential's signature counter went backwards")]
    CounterRegressed,
    /// Stored state or a stored credential could not be read back.
    #[error("passkey state unreadable: {0}")]
    Internal(String),
}

fn rejected(error: WebauthnError) -> PasskeyError {
    use WebauthnError as E;
    match error {
        E::CredentialPossibleCompromise => PasskeyError::CounterRegressed,
        E::MismatchedChallenge | E::ChallengeNotFound => PasskeyError::Rejected("challenge"),
        E::InvalidRPOrigin => PasskeyError::Rejected("origin"),
        E::InvalidRPIDHash => PasskeyError::Rejected("rp_id"),
        E::UserNotVerified | E::UserNotPresent => PasskeyError::Rejected("user_verification"),
        E::CredentialNotFound | E::CredentialCrossOrigin => PasskeyError::Rejected("credential"),
        E::ParseNOMFailure
        | E::ParseCBORFailure(_)
        | E::ParseJSONFailure(_)
        | E::ParseBase64Failure(_)
        | E::ParseInsufficientBytesAvailable => PasskeyError::Malformed("unreadable data".into()),
        E::InvalidClientDataType => PasskeyError::Rejected("client_data_type"),
        E::CredentialAlteredAlgFromRequest | E::CredentialInsecureCryptography => {
            PasskeyError::Rejected("algorithm")
        }
        _ => PasskeyError::Rejected("signature"),
    }
}

fn internal(what: &str, error: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Internal(format!("{what}: {error}"))
}

/// Where passkeys are valid: the RP id (a domain, never an IP address) and the origins allowed
/// to run ceremonies for it.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    webauthn: WebauthnCore,
    rp_id: String,
}

/// Options for the browser, and the state the server keeps until the ceremony's second half.
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// `{"publicKey": …}`, base64url fields (`parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON`).
    pub options: Value,
    /// Opaque, to be kept server-side and handed back once.
    pub state: Vec<u8>,
}

/// What a user sees of a passkey, read from the credential itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyFacts {
    pub credential_id: Vec<u8>,
    pub sign_count: u32,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
}

/// A credential a registration produced: what to store, and what it says of itself.
#[derive(Debug, Clone)]
pub struct RegisteredPasskey {
    /// The credential to store (opaque JSON).
    pub stored: String,
    pub facts: PasskeyFacts,
    /// The authenticator model's AAGUID (all zeros when the authenticator hides it).
    pub aaguid: Option<Uuid>,
}

/// A verified assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The stored credential updated with this use (counter, backup state).
    pub stored: String,
    /// `user_verified` is this assertion's (a PIN or biometric now), not the registration's.
    pub facts: PasskeyFacts,
}

/// What an assertion names before it is verified: the credential, and the user handle the
/// authenticator stored with it (discoverable credentials only).
#[derive(Debug, Clone)]
pub struct AssertionClaim {
    pub credential_id: Vec<u8>,
    pub user_handle: Option<Uuid>,
}

fn facts_of(credential: &Credential) -> PasskeyFacts {
    let transports = credential
        .transports
        .iter()
        .flatten()
        .filter_map(|transport| {
            serde_json::to_value(transport).ok().and_then(|value| value.as_str().map(str::to_owned))
        })
        .collect();
    PasskeyFacts {
        credential_id: credential.cred_id.to_vec(),
        sign_count: credential.counter,
        transports,
        backup_eligible: credential.backup_eligible,
        backup_state: credential.backup_state,
        user_verified: credential.user_verified,
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, PasskeyError> {
    serde_json::from_value(value.clone())
        .map_err(|error| PasskeyError::Malformed(error.to_string()))
}

fn stored_credential(stored: &str) -> Result<Credential, PasskeyError> {
    let passkey: Passkey =
        serde_json::from_str(stored).map_err(|e| internal("stored passkey", e))?;
    Ok(passkey.into())
}

/// The facts of a stored credential.
pub fn stored_facts(stored: &str) -> Result<PasskeyFacts, PasskeyError> {
    Ok(facts_of(&stored_credential(stored)?))
}

/// The base64url (no padding) text of a credential id, as WebAuthn JSON writes it.
pub fn credential_id_text(credential_id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(credential_id)
}

/// The AAGUID inside a registration's attestation object (authenticator data, attested
/// credential data), through the crate's own CBOR and authenticator-data parsers.
fn aaguid_of(registration: &RegisterPublicKeyCredential) -> Option<Uuid> {
    let object: serde_cbor_2::Value =
        serde_cbor_2::from_slice(&registration.response.attestation_object).ok()?;
    let serde_cbor_2::Value::Map(map) = object else { return None };
    let auth_data = map.iter().find_map(|(key, value)| match (key, value) {
        (serde_cbor_2::Value::Text(name), serde_cbor_2::Value::Bytes(bytes))
            if name == "authData" =>
        {
            Some(bytes.clone())
        }
        _ => None,
    })?;
    let data = AuthenticatorData::<Registration>::try_from(auth_data.as_slice()).ok()?;
    data.acd.map(|acd| Uuid::from_bytes(acd.aaguid))
}

impl RelyingParty {
    /// A relying party for `rp_id` (a registrable domain suffix of every origin, never an IP
    /// address) accepting ceremonies from `origins` (the first is the primary one).
    pub fn new(rp_id: &str, origins: &[Url], name: &str) -> Result<RelyingParty, PasskeyError> {
        if origins.is_empty() {
            return Err(PasskeyError::Configuration("no allowed origin".into()));
        }
        if rp_id.parse::<std::net::IpAddr>().is_ok()
            || rp_id.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_ok()
        {
            return Err(PasskeyError::Configuration(format!(
                "WebAuthn refuses an IP address ({rp_id}) as relying-party id; serve on a domain \
                 name (http://localhost:<port> in development) or set GATEHOUSE_PASSKEYS_RP_ID"
            )));
        }
        // As `WebauthnBuilder::new`: the RP id is every origin's effective domain or a parent.
        for origin in origins {
            if !origin
                .domain()
                .is_some_and(|domain| domain == rp_id || domain.ends_with(&format!(".{rp_id}")))
            {
                return Err(PasskeyError::Configuration(format!(
                    "the relying-party id {rp_id} is not the domain of {origin} or a parent of it"
                )));
            }
        }
        let webauthn = WebauthnCore::new_unsafe_experts_only(
            name,
            rp_id,
            origins.to_vec(),
            std::time::Duration::from_secs(300),
            Some(false),
            Some(false),
        );
        Ok(RelyingParty { webauthn, rp_id: rp_id.to_owned() })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Starts a registration for the user `handle` (stored by the authenticator, returned by
    /// discoverable sign-ins), excluding the credentials the user already has. A resident
    /// (discoverable) credential is preferred, so the user can sign in without a username.
    pub fn start_registration(
        &self,
        handle: Uuid,
        user_name: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<Ceremony, PasskeyError> {
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let extensions = RequestRegistrationExtensions {
            // Like webauthn-rs's passkeys, minus the enforced UV: discovery needs UV or the
            // credential id, without failing authenticators that lack UV.
            cred_protect: Some(CredProtect {
                credential_protection_policy:
                    CredentialProtectionPolicy::UserVerificationOptionalWithCredentialIDList,
                enforce_credential_protection_policy: Some(false),
            }),
            uvm: Some(true),
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        };
        let builder = self
            .webauthn
            .new_challenge_register_builder(handle.as_bytes(), user_name, display_name)
            .map_err(|error| internal("start registration", error))?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .require_resident_key(false)
            .authenticator_attachment(None)
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .reject_synchronised_authenticators(false)
            .exclude_credentials(exclude)
            .hints(None)
            .extensions(Some(extensions));
        let (options, state) = self
            .webauthn
            .generate_challenge_register(builder)
            .map_err(|error| internal("start registration", error))?;
        let mut options =
            serde_json::to_value(options).map_err(|e| internal("registration options", e))?;
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = Value::from("preferred");
        }
        let state = serde_json::to_vec(&state).map_err(|e| internal("registration state", e))?;
        Ok(Ceremony { options, state })
    }

    /// Finishes a registration: the credential (`PublicKeyCredential.toJSON()`) checked against
    /// the state of its ceremony.
    pub fn finish_registration(
        &self,
        credential: &Value,
        state: &[u8],
    ) -> Result<RegisteredPasskey, PasskeyError> {
        let registration: RegisterPublicKeyCredential = parse(credential)?;
        let state: RegistrationState =
            serde_json::from_slice(state).map_err(|e| internal("registration state", e))?;
        let credential =
            self.webauthn.register_credential(&registration, &state, None).map_err(rejected)?;
        let aaguid = aaguid_of(&registration);
        let facts = facts_of(&credential);
        let stored = serde_json::to_string(&Passkey::from(credential))
            .map_err(|e| internal("passkey", e))?;
        Ok(RegisteredPasskey { stored, facts, aaguid })
    }

    /// Starts a sign-in. With `allow` empty any discoverable credential may answer (the
    /// browser offers the user's passkeys for this site: the button without a username, and
    /// conditional UI); otherwise only the credentials listed.
    pub fn start_authentication(&self, allow: &[Vec<u8>]) -> Result<Ceremony, PasskeyError> {
        let builder = self
            .webauthn
            .new_challenge_authenticate_builder(Vec::new(), Some(UserVerificationPolicy::Preferred))
            .map_err(|error| internal("start authentication", error))?
            .extensions(None)
            .allow_backup_eligible_upgrade(true)
            .hints(None);
        let (options, state) = self
            .webauthn
            .generate_challenge_authenticate(builder)
            .map_err(|error| internal("start authentication", error))?;
        let mut options =
            serde_json::to_value(options).map_err(|e| internal("authentication options", e))?;
        // The client chooses the mediation (a button, or conditional UI on load).
        if let Some(object) = options.as_object_mut() {
            object.remove("mediation");
        }
        if !allow.is_empty()
            && let Some(public_key) =
                options.get_mut("publicKey").and_then(|value| value.as_object_mut())
        {
            let list: Vec<Value> = allow
                .iter()
                .map(|id| serde_json::json!({ "type": "public-key", "id": credential_id_text(id) }))
                .collect();
            public_key.insert("allowCredentials".into(), Value::Array(list));
        }
        let state = serde_json::to_vec(&state).map_err(|e| internal("authentication state", e))?;
        Ok(Ceremony { options, state })
    }

    /// What an assertion claims (its credential id, and the user handle when the credential
    /// is discoverable), read before anything is verified so the caller can find the stored
    /// credential.
    pub fn claim(&self, credential: &Value) -> Result<AssertionClaim, PasskeyError> {
        let assertion: PublicKeyCredential = parse(credential)?;
        let user_handle = assertion
            .response
            .user_handle
            .as_ref()
            .map(|bytes| Uuid::from_slice(bytes.as_ref()))
            .transpose()
            .map_err(|_| PasskeyError::Malformed("user handle is not ours".into()))?;
        Ok(AssertionClaim { credential_id: assertion.raw_id.to_vec(), user_handle })
    }

    /// Verifies an assertion against its ceremony's state and the stored credential it names;
    /// answers the credential updated with this use. `stored_sign_count` is the counter we
    /// keep beside the credential (the authority: the credential's own copy may be older).
    pub fn finish_authentication(
        &self,
        credential: &Value,
        state: &[u8],
        stored: &str,
        stored_sign_count: u32,
    ) -> Result<Assertion, PasskeyError> {
        let assertion: PublicKeyCredential = parse(credential)?;
        let state: AuthenticationState =
            serde_json::from_slice(state).map_err(|e| internal("authentication state", e))?;
        let mut stored_credential = stored_credential(stored)?;
        stored_credential.counter = stored_sign_count;
        let result = self
            .webauthn
            .authenticate_single_credential(&assertion, &state, &stored_credential)
            .map_err(rejected)?;
        let mut passkey = Passkey::from(stored_credential);
        passkey.update_credential(&result);
        let stored = serde_json::to_string(&passkey).map_err(|e| internal("passkey", e))?;
        let credential: Credential = passkey.into();
        let mut facts = facts_of(&credential);
        facts.user_verified = result.user_verified();
        Ok(Assertion { stored, facts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|error| unreachable!("{text}: {error}"))
    }

    #[test]
    fn an_ip_address_cannot_be_the_relying_party_id() {
        let error = RelyingParty::new("127.0.0.1", &[origin("http://127.0.0.1:8080")], "G")
            .err()
            .map(|error| error.to_string());
        assert!(error.is_some_and(|text| text.contains("IP address")));
    }

    #[test]
    fn origins_must_sit_under_the_relying_party_id() {
        assert!(RelyingParty::new("localhost", &[origin("http://localhost:8080")], "G").is_ok());
        assert!(
            RelyingParty::new("example.com", &[origin("https://auth.example.com")], "G").is_ok()
        );
        assert!(RelyingParty::new("example.com", &[origin("https://evil.test")], "G").is_err());
        assert!(
            RelyingParty::new(
                "example.com",
                &[origin("https://auth.example.com"), origin("https://example.org")],
                "G"
            )
            .is_err()
        );
    }

    #[test]
    fn registration_options_are_webauthn_json_preferring_a_discoverable_credential() {
        let rp = RelyingParty::new("localhost", &[origin("http://localhost:8080")], "Gatehouse")
            .unwrap_or_else(|error| unreachable!("{error}"));
        let ceremony = rp
            .start_registration(Uuid::nil(), "ada@example.com", "Ada", vec![vec![1, 2, 3]])
            .unwrap_or_else(|error| unreachable!("{error}"));
        let key = &ceremony.options["publicKey"];
        assert_eq!(key["rp"]["id"], "localhost");
        assert_eq!(key["authenticatorSelection"]["residentKey"], "preferred");
        assert_eq!(key["authenticatorSelection"]["userVerification"], "preferred");
        assert_eq!(key["excludeCredentials"][0]["id"], "AQID");
        assert!(key["challenge"].as_str().is_some_and(|text| text.len() >= 43));
    }

    #[test]
    fn sign_in_options_list_only_the_allowed_credentials_and_leave_mediation_to_the_client() {
        let rp = RelyingParty::new("localhost", &[origin("http://localhost:8080")], "Gatehouse")
            .unwrap_or_else(|error| unreachable!("{error}"));
        let open = rp.start_authentication(&[]).unwrap_or_else(|error| unreachable!("{error}"));
        assert!(open.options.get("mediation").is_none());
        assert!(
            open.options["publicKey"]["allowCredentials"]
                .as_array()
                .is_none_or(|list| list.is_empty())
        );
        let listed =
            rp.start_authentication(&[vec![9; 16]]).unwrap_or_else(|error| unreachable!("{error}"));
        assert_eq!(listed.options["publicKey"]["allowCredentials"][0]["type"], "public-key");
        assert_eq!(listed.options["publicKey"]["userVerification"], "preferred");
    }
}
