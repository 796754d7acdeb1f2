//! Sign-in with a passkey: the assertion is verified by `passkeys`; a passkey that verified its
//! user opens the session at once (it is both factors), one that did not is a first factor and
//! goes on like a password (the second step when the account has a factor, or the required
//! enrolment).

use crate::audit::AuditEvent;
use crate::error::DomainError;
use crate::passkeys::{PasskeyAssertion, VerifiedPasskey};
use crate::principal::{Actor, RequestContext};
use crate::sessions::record::Amr;
use crate::sessions::{NewSession, SignInMethod};
use crate::unit_of_work::UnitOfWork;

use super::{FirstFactor, SignInOutcome, SignInService};

impl SignInService {
    /// Finishes a passkey sign-in (`POST /v1/auth/passkey/finish`, the hosted `/login`):
    /// tokens, or the second step for a passkey without user verification. `trusted_device`
    /// is the trusted-browser token the request carried, as for a password.
    pub async fn sign_in_with_passkey(
        &self,
        assertion: PasskeyAssertion,
        trusted_device: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        let VerifiedPasskey { user, passkey, amr } =
            self.passkeys.verify_sign_in(assertion, context).await?;
        let event = AuditEvent::new(
            "passkey.used",
            &Actor::User(user.id.clone()),
            context,
            self.clock.now(),
        )
        .target("passkey", &passkey.id)
        .metadata(serde_json::json!({ "purpose": "sign_in", "amr": amr }));
        let work = UnitOfWork::events(vec![event]);
        if amr.contains(&Amr::Mfa) {
            let new = NewSession {
                user,
                rehashed_password: None,
                method: SignInMethod::Passkey,
                amr,
                facts: None,
                work,
            };
            let tokens = self.sessions.start(new, context).await?;
            return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
        }
        let first = FirstFactor {
            user,
            rehashed_password: None,
            method: SignInMethod::Passkey,
            trusted_browser: trusted_device,
            work,
            facts: None,
        };
        self.after_first_factor(first, context).await
    }
}
