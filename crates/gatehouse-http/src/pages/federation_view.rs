//! The federation parts of the pages as the templates see them: the "Continue with …" buttons
//! of `/login` and `/signup`, and the account page's linked-accounts section (the identities,
//! and a "Link …" button per provider not linked yet). Kept apart from `sso` (the flows) and
//! `linked_accounts` (the unlink form) so the pages that show them import no handler.

use gatehouse_domain::DomainError;
use gatehouse_domain::principal::Principal;
use minijinja::context;

use super::passkey_list::date;
use crate::locale::Locale;
use crate::state::AppState;

/// One button per enabled provider (the file's, then those added by admins): its name, its
/// kind (which icon) and `href`, `/sso/{id}?return_to=…` with the page's `return_to`
/// URL-encoded, so that a sign-in begun inside an OAuth authorization comes back to it. Empty
/// without providers, and when they cannot be listed (the store is down): the password form
/// still shows, and the failure is logged here since the page itself is no error.
pub(crate) async fn provider_buttons(state: &AppState, return_to: &str) -> Vec<minijinja::Value> {
    let providers = match state.federation.providers().await {
        Ok(providers) => providers,
        Err(error) => {
            tracing::error!(code = error.code(), error = %error, "sign-in providers not listed");
            return Vec::new();
        }
    };
    let query = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
    providers
        .into_iter()
        .map(|provider| {
            context! {
                href => format!("/sso/{}?{query}", provider.id),
                name => provider.name,
                kind => provider.kind,
            }
        })
        .collect()
}

/// The account page's linked-accounts section: `items` (id, provider name and kind, the
/// address the provider gave, the date linked), `link` (a button per enabled provider
/// none of the user's identities comes from: `/sso/{id}?link=1`) and `shown`: false when no
/// provider is configured and nothing is linked, so the page looks as it did before
/// federation.
pub(crate) async fn linked_accounts(
    state: &AppState,
    principal: &Principal,
    locale: Locale,
) -> Result<minijinja::Value, DomainError> {
    let providers = state.federation.providers().await?;
    let identities = state.federation.identities(&principal.user.id).await?;
    let kind_of = |provider_id: &str| {
        providers.iter().find(|provider| provider.id == provider_id).map(|provider| provider.kind)
    };
    let items: Vec<minijinja::Value> = identities
        .iter()
        .map(|identity| {
            context! {
                id => identity.id.clone(),
                provider_name => identity.provider_name.clone(),
                // A provider no longer configured keeps its identities: the generic icon.
                kind => kind_of(&identity.provider_id).unwrap_or("oidc"),
                email => identity.email.clone(),
                linked => date(identity.created_at, locale),
            }
        })
        .collect();
    let link: Vec<minijinja::Value> = providers
        .iter()
        .filter(|provider| !identities.iter().any(|identity| identity.provider_id == provider.id))
        .map(|provider| {
            context! {
                href => format!("/sso/{}?link=1", provider.id),
                name => provider.name.clone(),
                kind => provider.kind,
            }
        })
        .collect();
    let shown = !providers.is_empty() || !identities.is_empty();
    Ok(context! { shown => shown, items => items, link => link })
}
