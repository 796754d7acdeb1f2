//! What a verifier was built with (the builder checks it; everything else reads it).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};

/// A client secret that does not print.
#[derive(Clone)]
pub(crate) struct ClientSecret(pub String);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// Everything a verifier was built with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub token_type: Option<String>,
    pub leeway: Duration,
    pub jwks_url: Option<String>,
    pub jwks_default_ttl: Duration,
    pub jwks_min_ttl: Duration,
    pub jwks_max_ttl: Duration,
    pub unknown_kid_refresh_interval: Duration,
    pub introspection: Option<IntrospectionSettings>,
    /// One prepared `Validation` per allowed algorithm, so a verification clones nothing.
    pub validations: HashMap<Algorithm, Validation>,
}

#[derive(Debug)]
pub(crate) struct IntrospectionSettings {
    pub endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
}
