//! `VerifierBuilder`: the issuer, the audiences and every tunable, checked once at build time.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};

use crate::error::ConfigError;
use crate::settings::{ClientSecret, IntrospectionSettings, Settings};
use crate::verifier::Verifier;

/// The asymmetric algorithms a verifier accepts unless told otherwise. HMAC algorithms and
/// `none` can never be allowed.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `typ` header of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Builds a [`Verifier`]. Nothing is fetched until the first verification (or
/// [`Verifier::refresh_keys`]).
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    token_type: Option<String>,
    leeway: Duration,
    jwks_url: Option<String>,
    jwks_default_ttl: Duration,
    jwks_min_ttl: Duration,
    jwks_max_ttl: Duration,
    unknown_kid_refresh_interval: Duration,
    introspection: Option<IntrospectionSettings>,
    http_client: Option<reqwest::Client>,
    http_timeout: Duration,
}

impl Verifier {
    /// Starts a verifier for tokens of `issuer` (exactly as the tokens' `iss` and the
    /// discovery document's `issuer` write it, such as `https://auth.example.com`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer)
    }
}

impl VerifierBuilder {
    fn new(issuer: impl Into<String>) -> Self {
        VerifierBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            token_type: Some(ACCESS_TOKEN_TYPE.to_owned()),
            leeway: Duration::from_secs(30),
            jwks_url: None,
            jwks_default_ttl: Duration::from_secs(300),
            jwks_min_ttl: Duration::from_secs(30),
            jwks_max_ttl: Duration::from_secs(24 * 3600),
            unknown_kid_refresh_interval: Duration::from_secs(30),
            introspection: None,
            http_client: None,
            http_timeout: Duration::from_secs(10),
        }
    }

    /// An audience this resource server accepts (`aud` must name at least one). Call it once
    /// per accepted audience. Gatehouse's first-party tokens carry `tokens.audience`, which
    /// defaults to the issuer URL.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The only algorithms accepted (default: [`DEFAULT_ALGORITHMS`]). A key is also bound
    /// to its own `alg`, so a token can never choose another algorithm than its key's.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// The `typ` header tokens must carry (default `at+jwt`, compared as RFC 7515 says:
    /// case-insensitively, `application/` optional); `None` accepts any.
    pub fn token_type(mut self, token_type: Option<&str>) -> Self {
        self.token_type = token_type.map(str::to_owned);
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Fetch keys from this URL instead of the `jwks_uri` of the issuer's discovery document.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// How long a fetched key set is used: the JWKS answer's `Cache-Control: max-age`
    /// (`default` when it has none), never less than `min` nor more than `max` (defaults
    /// 300 s, 30 s, 24 h). A stale set is refreshed by the next verification; keys stay in
    /// use while the issuer cannot be reached.
    pub fn jwks_cache(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.jwks_default_ttl = default;
        self.jwks_min_ttl = min;
        self.jwks_max_ttl = max;
        self
    }

    /// A token naming an unknown `kid` makes the verifier fetch the key set again (a key was
    /// rotated in), at most once per `interval` (default 30 s): a flood of made-up `kid`s
    /// costs the issuer one request per interval.
    pub fn unknown_kid_refresh_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_refresh_interval = interval;
        self
    }

    /// Accept opaque tokens (Gatehouse API keys, `gtk_…`) by asking the issuer's
    /// introspection endpoint (RFC 7662) as this confidential client. Answers are cached
    /// for 30 s by default (see [`Self::introspection_cache`]).
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some(IntrospectionSettings {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: ClientSecret(client_secret.into()),
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
        });
        self
    }

    /// The introspection endpoint, instead of the discovery document's. Needs
    /// [`Self::introspection`] first.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        if let Some(settings) = &mut self.introspection {
            settings.endpoint = Some(url.into());
        }
        self
    }

    /// How long an introspection answer is reused (never past the token's `exp`), and how
    /// many answers are kept. A revoked API key keeps working for at most `ttl`; zero asks
    /// every time. Needs [`Self::introspection`] first.
    pub fn introspection_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        if let Some(settings) = &mut self.introspection {
            settings.cache_ttl = ttl;
            settings.cache_capacity = capacity;
        }
        self
    }

    /// The HTTP client for discovery, JWKS and introspection (default: a new one with a
    /// 10 s timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        if !is_http_url(&self.issuer) {
            return Err(ConfigError::Issuer(self.issuer));
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::MissingAudience);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if let Some(refused) = self.algorithms.iter().find(|a| !DEFAULT_ALGORITHMS.contains(a)) {
            return Err(ConfigError::Algorithm(format!("{refused:?}")));
        }
        if self.jwks_url.as_deref().is_some_and(|url| !is_http_url(url)) {
            return Err(ConfigError::Url("jwks_url"));
        }
        let introspection_endpoint =
            self.introspection.as_ref().and_then(|settings| settings.endpoint.as_deref());
        if introspection_endpoint.is_some_and(|url| !is_http_url(url)) {
            return Err(ConfigError::Url("introspection_endpoint"));
        }
        let http = match self.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(self.http_timeout)
                .build()
                .map_err(|error| ConfigError::HttpClient(error.to_string()))?,
        };
        let validations = self
            .algorithms
            .iter()
            .map(|algorithm| {
                let mut validation = Validation::new(*algorithm);
                validation.set_issuer(&[&self.issuer]);
                validation.set_audience(&self.audiences);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = self.leeway.as_secs();
                (*algorithm, validation)
            })
            .collect();
        let settings = Settings {
            issuer: self.issuer,
            audiences: self.audiences,
            algorithms: self.algorithms,
            token_type: self.token_type,
            leeway: self.leeway,
            jwks_url: self.jwks_url,
            jwks_default_ttl: self.jwks_default_ttl,
            jwks_min_ttl: self.jwks_min_ttl,
            jwks_max_ttl: self.jwks_max_ttl,
            unknown_kid_refresh_interval: self.unknown_kid_refresh_interval,
            introspection: self.introspection,
            validations,
        };
        Ok(Verifier::from_settings(settings, http))
    }
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}
