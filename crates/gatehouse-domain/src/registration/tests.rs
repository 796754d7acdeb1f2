//! Tests of the sign-up switch (`signup_enabled`): off, nobody signs themselves up and
//! nothing is written; admins still create accounts.

use crate::admin_users::NewUserByAdmin;
use crate::error::{DomainError, Feature};
use crate::principal::AdminPrincipal;
use crate::registration::{SignUp, SignUpOutcome};
use crate::testing::{TestWorld, WorldSettings, context};
use crate::users::AccountSettings;

const PASSWORD: &str = "Quasar-trail-mix-81!";

async fn world(signup_enabled: bool) -> TestWorld {
    let settings = WorldSettings {
        account: AccountSettings { signup_enabled, ..AccountSettings::default() },
        ..WorldSettings::default()
    };
    TestWorld::with(settings).await
}

fn sign_up(email: &str) -> SignUp {
    SignUp { email: email.into(), password: PASSWORD.into(), ..SignUp::default() }
}

#[tokio::test]
async fn sign_up_switched_off_is_refused_before_anything_is_written() {
    let world = world(false).await;
    assert!(!world.accounts.registration.signup_enabled());
    let result = world.accounts.registration.sign_up(sign_up("ada@example.test"), &context()).await;
    assert!(matches!(result, Err(DomainError::Disabled(Feature::SignUp))), "{result:?}");
    // Even a request that would fail validation gets the same answer: nothing is checked.
    let result = world.accounts.registration.sign_up(sign_up("not an address"), &context()).await;
    assert_eq!(result.map(|_| ()).unwrap_err().code(), "signup_disabled");
    assert!(world.store.units_of_work().is_empty());
    assert!(world.store.events("user.created").is_empty());

    // Admins (and so the CLI and bulk import, which go through the same service) still can.
    let admin = AdminPrincipal::system();
    let request = NewUserByAdmin {
        email: "grace@example.test".into(),
        password: Some(PASSWORD.into()),
        ..NewUserByAdmin::default()
    };
    let created = world.accounts.admin_users.create(&admin, request, &context()).await.unwrap();
    assert_eq!(created.email.as_deref(), Some("grace@example.test"));
}

#[tokio::test]
async fn sign_up_switched_on_creates_the_account() {
    let world = world(true).await;
    assert!(world.accounts.registration.signup_enabled());
    let outcome =
        world.accounts.registration.sign_up(sign_up("ada@example.test"), &context()).await.unwrap();
    assert!(matches!(outcome, SignUpOutcome::Created { tokens: Some(_), .. }), "{outcome:?}");
    assert_eq!(world.store.events("user.created").len(), 1);
}
