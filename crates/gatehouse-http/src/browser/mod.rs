//! What the hosted pages are made of, below the state that holds it: `render` ([`Pages`]:
//! the embedded minijinja templates, `catalogues` of words in English and French, branding,
//! the pages' CSP, redirects and error pages), the signed `cookies` and the `csrf` key, and
//! `return_to` validation, and the one page `script` (passkeys) with its CSP hash. Built once in `main` from the master key; imports no handler and
//! no state. The pages themselves (and their extractors) are in `crate::pages`.

pub(crate) mod catalogues;
pub(crate) mod cookies;
pub(crate) mod csrf;
pub(crate) mod render;
pub(crate) mod return_to;
pub(crate) mod script;
