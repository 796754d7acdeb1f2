//! Sign-in through an upstream identity provider (`FederationService` checked the identity):
//! a first factor like a password — the account's second step follows — unless the provider
//! is trusted for its `amr` and the upstream asserted a second factor.

use crate::error::DomainError;
use crate::principal::RequestContext;
use crate::sessions::record::Amr;
use crate::sessions::{NewSession, SignInMethod};
use crate::unit_of_work::UnitOfWork;
use crate::users::record::UserRecord;

use super::{FirstFactor, SignInOutcome, SignInService};

impl SignInService {
    /// Signs `user` in through a provider, writing `work` (the identity's audit event, a new
    /// link) with the session or the challenge.
    pub async fn sign_in_with_identity(
        &self,
        user: UserRecord,
        upstream_mfa: bool,
        work: UnitOfWork,
        trusted_device: Option<&str>,
        context: &RequestContext,
    ) -> Result<SignInOutcome, DomainError> {
        if upstream_mfa {
            let new = NewSession {
                user,
                rehashed_password: None,
                method: SignInMethod::Sso,
                amr: vec![Amr::Fed, Amr::Mfa],
                facts: None,
                work,
            };
            let tokens = self.sessions.start(new, context).await?;
            return Ok(SignInOutcome::SignedIn(Box::new(tokens)));
        }
        let first = FirstFactor {
            user,
            rehashed_password: None,
            method: SignInMethod::Sso,
            trusted_browser: trusted_device,
            work,
            facts: None,
        };
        self.after_first_factor(first, context).await
    }
}
