//! `UpstreamClient`: the federation `Upstream` port over HTTP.
//!
//! - OpenID kinds go through the `openidconnect` crate: the discovery document (cached for an
//!   hour per provider, fetched again once when an ID token names a key the cached JWKS does
//!   not have), the authorization URL with PKCE S256 and the nonce, the code exchange, and the
//!   ID token's checks (signature through the upstream's JWKS, `iss`, `aud`, `exp`, `nonce`).
//!   The RFC 9207 `iss` parameter, when the callback carries one, must be the issuer.
//!   Names and the address come from the ID token, else from the user-info endpoint.
//! - Plain OAuth 2 kinds go through the `oauth2` crate (PKCE S256, the code exchange), then
//!   the user-info API, mapped by the provider's claim mapping; GitHub's preset reads the
//!   emails API for the verified primary address.
//! - Apple's preset: its client secret is a JWT minted for each exchange (ES256 with the
//!   team's sign-in key: `iss` the team, `sub` the client id, `aud` the issuer, five minutes),
//!   and the browser comes back with a form POST (`response_mode=form_post`).
//! - The token answer's access and refresh tokens go with the identity (the domain keeps them
//!   only for a provider set to), and a kept refresh token is exchanged on request.
//! - Every call has a bounded timeout and follows no redirect. Calls for providers added
//!   through the admin API (not the operator's file) follow the outbound SSRF rule at each
//!   call: the URL is checked and the connection pinned to the checked address.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gatehouse_domain::federation::{
    AuthorizationRequest, AuthorizationStart, ClientKey, CodeExchange, IdentityProvider,
    ProviderKind, Upstream, UpstreamError, UpstreamIdentity, UpstreamTokens,
};
use gatehouse_domain::outbound::OutboundGuard;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use serde_json::Value;

/// The ID token claims beyond the standard ones that a provider's checks read: Microsoft's
/// tenant (`tid`), which a multi-tenant issuer must name.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct UpstreamClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tid: Option<String>,
}

impl openidconnect::AdditionalClaims for UpstreamClaims {}

type TokenAnswer = openidconnect::StandardTokenResponse<
    openidconnect::IdTokenFields<
        UpstreamClaims,
        openidconnect::EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// An OpenID client over a discovered provider (authorization URL set, token and user-info
/// URLs as discovered).
type OidcClient = openidconnect::Client<
    UpstreamClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    TokenAnswer,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// A discovered provider: its metadata (issuer = the configured one) and, for a multi-tenant
/// Microsoft issuer, the template its tokens' `iss` follows (`…/{tenantid}/v2.0`).
#[derive(Clone)]
struct Discovered {
    metadata: CoreProviderMetadata,
    issuer_template: Option<String>,
}

/// How long a discovery document (and its JWKS) is kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The longest answer read from an upstream.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug)]
pub struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

type HttpFuture<'c> =
    Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send + 'c>>;

pub struct UpstreamClient {
    http: reqwest::Client,
    timeout: Duration,
    guard: Arc<dyn OutboundGuard>,
    discovered: Mutex<HashMap<String, (Instant, Discovered)>>,
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
}

/// A client for `url` under the SSRF rule: checked now, connected to the checked address only.
async fn guarded_client(
    guard: &dyn OutboundGuard,
    url: &str,
    timeout: Duration,
) -> Result<reqwest::Client, String> {
    let addresses = guard.check(url).await?;
    crate::webhook::pinned_client(builder(timeout), url, &addresses)
}

impl UpstreamClient {
    /// `guard`: the SSRF rule, for providers that are not the operator's own configuration.
    pub fn new(timeout: Duration, guard: Arc<dyn OutboundGuard>) -> Result<UpstreamClient, String> {
        let http =
            builder(timeout).build().map_err(|error| format!("upstream HTTP client: {error}"))?;
        Ok(UpstreamClient { http, timeout, guard, discovered: Mutex::new(HashMap::new()) })
    }

    /// The HTTP client the `openidconnect` and `oauth2` crates call through; `guarded` puts
    /// every call under the SSRF rule.
    fn transport(
        &self,
        guarded: bool,
    ) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture<'static> + '_ {
        let client = self.http.clone();
        let guard = guarded.then(|| self.guard.clone());
        let timeout = self.timeout;
        move |request: openidconnect::HttpRequest| {
            let client = client.clone();
            let guard = guard.clone();
            Box::pin(async move {
                let (parts, body) = request.into_parts();
                let url = parts.uri.to_string();
                let client = match &guard {
                    Some(guard) => guarded_client(guard.as_ref(), &url, timeout)
                        .await
                        .map_err(|reason| HttpError(format!("{url} is refused: {reason}")))?,
                    None => client,
                };
                let mut outgoing = client.request(parts.method, url).body(body);
                for (name, value) in &parts.headers {
                    outgoing = outgoing.header(name, value);
                }
                let response =
                    outgoing.send().await.map_err(|error| HttpError(error.to_string()))?;
                let mut builder =
                    openidconnect::http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    builder = builder.header(name, value);
                }
                let bytes = response.bytes().await.map_err(|error| HttpError(error.to_string()))?;
                if bytes.len() > MAX_BODY_BYTES {
                    return Err(HttpError("the answer is too large".into()));
                }
                builder.body(bytes.to_vec()).map_err(|error| HttpError(error.to_string()))
            })
        }
    }

    /// The provider's discovery document: cached, or fetched (`fresh` skips the cache).
    async fn metadata(
        &self,
        provider: &IdentityProvider,
        fresh: bool,
    ) -> Result<Discovered, UpstreamError> {
        let issuer = provider
            .issuer
            .as_deref()
            .ok_or_else(|| UpstreamError::Unavailable("no issuer configured".into()))?;
        if !fresh
            && let Ok(cache) = self.discovered.lock()
            && let Some((at, discovered)) = cache.get(&provider.id)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(discovered.clone());
        }
        let issuer_url = IssuerUrl::new(issuer.to_owned())
            .map_err(|error| UpstreamError::Unavailable(format!("issuer: {error}")))?;
        let transport = self.transport(!provider.from_file);
        let discovered = if provider.kind == ProviderKind::Microsoft {
            self.microsoft_metadata(provider, issuer_url).await?
        } else {
            let metadata = CoreProviderMetadata::discover_async(issuer_url, &transport)
                .await
                .map_err(|error| UpstreamError::Unavailable(format!("discovery: {error}")))?;
            Discovered { metadata, issuer_template: None }
        };
        if let Ok(mut cache) = self.discovered.lock() {
            cache.insert(provider.id.clone(), (Instant::now(), discovered.clone()));
        }
        Ok(discovered)
    }

    /// Microsoft's discovery document: for the multi-tenant endpoints (`common`,
    /// `organizations`, `consumers`) its issuer is a template (`…/{tenantid}/v2.0`) that no
    /// token carries as is, so the document is read without the issuer check of OpenID
    /// Discovery and each token's `iss` is checked against the template filled with its `tid`.
    async fn microsoft_metadata(
        &self,
        provider: &IdentityProvider,
        issuer_url: IssuerUrl,
    ) -> Result<Discovered, UpstreamError> {
        let unavailable = |what: &str, error: String| {
            UpstreamError::Unavailable(format!("discovery ({what}): {error}"))
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer_url.as_str().trim_end_matches('/')
        );
        let document = self.get_json(provider, &url, None).await?;
        let template = document["issuer"].as_str().unwrap_or_default().to_owned();
        let metadata: CoreProviderMetadata = serde_json::from_value(document)
            .map_err(|error| unavailable("document", error.to_string()))?;
        let transport = self.transport(!provider.from_file);
        let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &transport)
            .await
            .map_err(|error| unavailable("JWKS", error.to_string()))?;
        let metadata = metadata.set_issuer(issuer_url.clone()).set_jwks(jwks);
        let issuer_template = if template.contains("{tenantid}") {
            Some(template)
        } else if template == issuer_url.as_str() {
            None
        } else {
            return Err(unavailable(
                "document",
                format!("its issuer {template} is not the configured {}", issuer_url.as_str()),
            ));
        };
        Ok(Discovered { metadata, issuer_template })
    }

    /// The client secret to present: the configured one, or (Apple) one minted now.
    fn client_secret(provider: &IdentityProvider) -> Result<Option<String>, UpstreamError> {
        match &provider.client_key {
            Some(key) => {
                let audience = provider.issuer.as_deref().unwrap_or_default();
                minted_client_secret(key, &provider.client_id, audience, unix_now()).map(Some)
            }
            None => Ok(provider.client_secret.clone()),
        }
    }

    fn oidc_client(
        provider: &IdentityProvider,
        metadata: CoreProviderMetadata,
        redirect_uri: Option<&str>,
    ) -> Result<OidcClient, UpstreamError> {
        // A provider that takes the client's credentials only in the form body says so.
        let form_only = metadata.token_endpoint_auth_methods_supported().is_some_and(|methods| {
            !methods.is_empty()
                && methods.iter().all(|method| {
                    method == &openidconnect::core::CoreClientAuthMethod::ClientSecretPost
                })
        });
        let mut client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.client_id.clone()),
            Self::client_secret(provider)?.map(ClientSecret::new),
        );
        if let Some(redirect_uri) = redirect_uri {
            let redirect = RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|error| UpstreamError::Unavailable(format!("redirect URI: {error}")))?;
            client = client.set_redirect_uri(redirect);
        }
        Ok(if form_only {
            client.set_auth_type(openidconnect::AuthType::RequestBody)
        } else {
            client
        })
    }

    fn oauth2_client(
        provider: &IdentityProvider,
        redirect_uri: Option<&str>,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        UpstreamError,
    > {
        let url = |value: &Option<String>, what: &str| {
            value.clone().ok_or_else(|| UpstreamError::Unavailable(format!("no {what} configured")))
        };
        let auth = oauth2::AuthUrl::new(url(&provider.authorization_url, "authorization_url")?)
            .map_err(|error| UpstreamError::Unavailable(format!("authorization_url: {error}")))?;
        let token = oauth2::TokenUrl::new(url(&provider.token_url, "token_url")?)
            .map_err(|error| UpstreamError::Unavailable(format!("token_url: {error}")))?;
        let mut client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(provider.client_id.clone()))
                .set_auth_uri(auth)
                .set_token_uri(token);
        if let Some(redirect_uri) = redirect_uri {
            let redirect = oauth2::RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|error| UpstreamError::Unavailable(format!("redirect URI: {error}")))?;
            client = client.set_redirect_uri(redirect);
        }
        if let Some(secret) = &provider.client_secret {
            client = client.set_client_secret(oauth2::ClientSecret::new(secret.clone()));
        }
        Ok(client)
    }

    async fn oidc_identity(
        &self,
        provider: &IdentityProvider,
        exchange: &CodeExchange,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let discovered = self.metadata(provider, false).await?;
        // RFC 9207: the `iss` parameter names the issuer (a multi-tenant one: its tenant's).
        if let Some(iss) = &exchange.iss {
            let expected = match &discovered.issuer_template {
                Some(template) => tenant_issuer_matches(template, iss),
                None => iss == discovered.metadata.issuer().as_str(),
            };
            if !expected {
                return Err(UpstreamError::Rejected("the iss parameter is not the issuer".into()));
            }
        }
        let template = discovered.issuer_template.clone();
        let client =
            Self::oidc_client(provider, discovered.metadata, Some(&exchange.redirect_uri))?;
        let transport = self.transport(!provider.from_file);
        let response = client
            .exchange_code(AuthorizationCode::new(exchange.code.clone()))
            .map_err(|error| UpstreamError::Unavailable(format!("token endpoint: {error}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(exchange.pkce_verifier.clone()))
            .request_async(&transport)
            .await
            .map_err(token_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| UpstreamError::Rejected("the token answer has no ID token".into()))?;
        let nonce = Nonce::new(exchange.nonce.clone());
        // A multi-tenant issuer: `iss` is checked below against the tenant the token names.
        let single_tenant = template.is_none();
        let claims = match id_token
            .claims(&client.id_token_verifier().require_issuer_match(single_tenant), &nonce)
        {
            Ok(claims) => claims.clone(),
            // A key the cached JWKS does not have: the upstream rotated; fetch once more.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let discovered = self.metadata(provider, true).await?;
                let client =
                    Self::oidc_client(provider, discovered.metadata, Some(&exchange.redirect_uri))?;
                id_token
                    .claims(&client.id_token_verifier().require_issuer_match(single_tenant), &nonce)
                    .map_err(|error| UpstreamError::Rejected(format!("ID token: {error}")))?
                    .clone()
            }
            Err(error) => return Err(UpstreamError::Rejected(format!("ID token: {error}"))),
        };
        if let Some(template) = &template {
            let tenant = claims.additional_claims().tid.as_deref().unwrap_or_default();
            let expected = template.replace("{tenantid}", tenant);
            if tenant.is_empty() || claims.issuer().as_str() != expected {
                return Err(UpstreamError::Rejected(
                    "ID token: the issuer is not the token's tenant's".into(),
                ));
            }
        }
        let mut identity = UpstreamIdentity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            given_name: claims
                .given_name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
            family_name: claims
                .family_name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
            picture: claims
                .picture()
                .and_then(|picture| picture.get(None))
                .map(|picture| picture.as_str().to_owned()),
            auth_time: claims.auth_time().map(|at| at.timestamp()),
            amr: claims
                .auth_method_refs()
                .map(|values| values.iter().map(|value| value.as_str().to_owned()).collect())
                .unwrap_or_default(),
            tokens: Some(upstream_tokens(&response)),
        };
        // No address in the ID token: ask the user-info endpoint (same subject).
        if identity.email.is_none()
            && let Ok(request) =
                client.user_info(response.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: Result<openidconnect::core::CoreUserInfoClaims, _> =
                request.request_async(&transport).await;
            if let Ok(info) = info {
                identity.email = info.email().map(|email| email.as_str().to_owned());
                identity.email_verified = info.email_verified().unwrap_or(false);
            }
        }
        Ok(identity)
    }

    async fn oauth2_identity(
        &self,
        provider: &IdentityProvider,
        exchange: &CodeExchange,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let client = Self::oauth2_client(provider, Some(&exchange.redirect_uri))?;
        let transport = self.transport(!provider.from_file);
        let response = client
            .exchange_code(oauth2::AuthorizationCode::new(exchange.code.clone()))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(exchange.pkce_verifier.clone()))
            .request_async(&transport)
            .await
            .map_err(token_error)?;
        let token = response.access_token().secret().clone();
        let userinfo_url = provider
            .userinfo_url
            .as_deref()
            .ok_or_else(|| UpstreamError::Unavailable("no userinfo_url configured".into()))?;
        let info = self.get_json(provider, userinfo_url, Some(&token)).await?;
        let text = |key: &Option<String>| {
            key.as_deref().and_then(|key| match &info[key] {
                Value::String(text) if !text.is_empty() => Some(text.clone()),
                _ => None,
            })
        };
        let mapping = &provider.claims;
        let subject = match &info[mapping.subject.as_str()] {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(UpstreamError::Rejected("the user-info answer has no subject".into())),
        };
        let mut identity = UpstreamIdentity {
            subject,
            email: text(&Some(mapping.email.clone())),
            email_verified: mapping
                .email_verified
                .as_deref()
                .is_some_and(|key| info[key] == Value::Bool(true)),
            given_name: text(&mapping.given_name),
            family_name: text(&mapping.family_name),
            picture: text(&mapping.picture),
            amr: Vec::new(),
            auth_time: None,
            tokens: Some(upstream_tokens(&response)),
        };
        if provider.kind == ProviderKind::GitHub {
            // GitHub's profile address is whatever the user made public, unverified: the
            // emails API says which address is the verified primary one.
            identity.email = None;
            identity.email_verified = false;
            if let Some(emails_url) = provider.emails_url.as_deref() {
                let emails = self.get_json(provider, emails_url, Some(&token)).await?;
                if let Some(primary) = emails.as_array().and_then(|list| {
                    list.iter().find(|entry| {
                        entry["primary"] == Value::Bool(true)
                            && entry["verified"] == Value::Bool(true)
                    })
                }) {
                    identity.email = primary["email"].as_str().map(str::to_owned);
                    identity.email_verified = identity.email.is_some();
                }
            }
            if identity.given_name.is_none() {
                identity.given_name = info["name"].as_str().map(str::to_owned);
            }
            identity.picture = info["avatar_url"].as_str().map(str::to_owned);
        }
        Ok(identity)
    }

    async fn get_json(
        &self,
        provider: &IdentityProvider,
        url: &str,
        token: Option<&str>,
    ) -> Result<Value, UpstreamError> {
        let client = if provider.from_file {
            self.http.clone()
        } else {
            guarded_client(self.guard.as_ref(), url, self.timeout).await.map_err(|reason| {
                UpstreamError::Unavailable(format!("{url} is refused: {reason}"))
            })?
        };
        let mut request = client.get(url).header("Accept", "application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| UpstreamError::Unavailable(format!("{url}: {error}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| UpstreamError::Unavailable(format!("{url}: {error}")))?;
        if !status.is_success() {
            return Err(UpstreamError::Rejected(format!("{url} answered {status}")));
        }
        if bytes.len() > MAX_BODY_BYTES {
            return Err(UpstreamError::Unavailable(format!("{url}: the answer is too large")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|error| UpstreamError::Unavailable(format!("{url}: not JSON: {error}")))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

/// How long a minted client secret is good for: one exchange (or refresh) needs seconds.
const MINTED_SECRET_SECONDS: i64 = 300;

/// Apple's client secret: an ES256 JWT signed with the team's sign-in key.
fn minted_client_secret(
    key: &ClientKey,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<String, UpstreamError> {
    let signing = gatehouse_crypto::SigningKey::from_pkcs8_pem(
        gatehouse_crypto::SigningAlgorithm::ES256,
        &key.private_key,
    )
    .map_err(|error| UpstreamError::Unavailable(format!("the sign-in key: {error}")))?;
    let claims = serde_json::json!({
        "iss": key.team_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + MINTED_SECRET_SECONDS,
    });
    signing
        .sign_as("JWT", &key.key_id, &claims)
        .map_err(|error| UpstreamError::Unavailable(format!("the client secret: {error}")))
}

/// The tokens of a token answer.
fn upstream_tokens<TT: oauth2::TokenType + AsRef<str>>(
    response: &impl OAuth2TokenResponse<TokenType = TT>,
) -> UpstreamTokens {
    UpstreamTokens {
        access_token: response.access_token().secret().clone(),
        token_type: response.token_type().as_ref().to_owned(),
        refresh_token: response.refresh_token().map(|token| token.secret().clone()),
        expires_in: response.expires_in().map(|lifetime| lifetime.as_secs() as i64),
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|scope| scope.as_str().to_owned()).collect()),
    }
}

/// A refused exchange (`invalid_grant`, ...) is a rejection; a transport failure is not.
/// GitHub refuses with HTTP 200 and an error body (`{"error":"bad_verification_code",...}`),
/// which the `oauth2` crate reports as an unparsable token answer: an answer that names an
/// `error` is read as the refusal it is.
fn token_error<RE: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    error: oauth2::RequestTokenError<RE, T>,
) -> UpstreamError {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => {
            UpstreamError::Rejected(format!("token endpoint: {response}"))
        }
        oauth2::RequestTokenError::Parse(error, body) => match refusal_code(&body) {
            Some(code) => UpstreamError::Rejected(format!("token endpoint: {code}")),
            None => UpstreamError::Unavailable(format!(
                "token endpoint: {}",
                oauth2::RequestTokenError::<RE, T>::Parse(error, body)
            )),
        },
        other => UpstreamError::Unavailable(format!("token endpoint: {other}")),
    }
}

/// The `error` code of a token answer that is a refusal in disguise (HTTP 200), kept short
/// and printable since it is logged; none for anything else.
fn refusal_code(body: &[u8]) -> Option<String> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let code = answer.get("error")?.as_str()?;
    let printable = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.');
    printable.then(|| code.to_owned())
}

#[async_trait]
impl Upstream for UpstreamClient {
    async fn start(
        &self,
        provider: &IdentityProvider,
        request: &AuthorizationRequest,
    ) -> Result<AuthorizationStart, UpstreamError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = request.state.clone();
        let scopes = provider.scopes.iter().map(|scope| Scope::new(scope.clone()));
        let url = if provider.kind.speaks_oidc() {
            let discovered = self.metadata(provider, false).await?;
            let client =
                Self::oidc_client(provider, discovered.metadata, Some(&request.redirect_uri))?;
            let nonce = request.nonce.clone();
            let mut authorization = client
                .authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    move || CsrfToken::new(state),
                    move || Nonce::new(nonce),
                )
                .add_scopes(scopes.filter(|scope| scope.as_str() != "openid"))
                .set_pkce_challenge(challenge);
            if provider.kind.posts_callback() {
                authorization = authorization.add_extra_param("response_mode", "form_post");
            }
            if request.fresh_login {
                authorization = authorization
                    .add_prompt(CoreAuthPrompt::Login)
                    .set_max_age(Duration::from_secs(0));
            }
            let (url, _, _) = authorization.url();
            url
        } else {
            let client = Self::oauth2_client(provider, Some(&request.redirect_uri))?;
            let (url, _) = client
                .authorize_url(move || oauth2::CsrfToken::new(state))
                .add_scopes(scopes.map(|scope| oauth2::Scope::new(scope.as_str().to_owned())))
                .set_pkce_challenge(oauth2::PkceCodeChallenge::from_code_verifier_sha256(
                    &oauth2::PkceCodeVerifier::new(verifier.secret().clone()),
                ))
                .url();
            url
        };
        Ok(AuthorizationStart { url: url.to_string(), pkce_verifier: verifier.secret().clone() })
    }

    async fn identity(
        &self,
        provider: &IdentityProvider,
        exchange: &CodeExchange,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        if provider.kind.speaks_oidc() {
            self.oidc_identity(provider, exchange).await
        } else {
            self.oauth2_identity(provider, exchange).await
        }
    }

    async fn refresh(
        &self,
        provider: &IdentityProvider,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let transport = self.transport(!provider.from_file);
        if provider.kind.speaks_oidc() {
            let discovered = self.metadata(provider, false).await?;
            let client = Self::oidc_client(provider, discovered.metadata, None)?;
            let response = client
                .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
                .map_err(|error| UpstreamError::Unavailable(format!("token endpoint: {error}")))?
                .request_async(&transport)
                .await
                .map_err(token_error)?;
            Ok(upstream_tokens(&response))
        } else {
            let client = Self::oauth2_client(provider, None)?;
            let response = client
                .exchange_refresh_token(&oauth2::RefreshToken::new(refresh_token.to_owned()))
                .request_async(&transport)
                .await
                .map_err(token_error)?;
            Ok(upstream_tokens(&response))
        }
    }
}

/// Whether `iss` is the multi-tenant `template` filled with one tenant id (a GUID-like
/// segment: letters, digits and dashes).
fn tenant_issuer_matches(template: &str, iss: &str) -> bool {
    let Some((before, after)) = template.split_once("{tenantid}") else { return false };
    iss.strip_prefix(before).and_then(|rest| rest.strip_suffix(after)).is_some_and(|tenant| {
        !tenant.is_empty() && tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tenant_issuer_is_the_template_filled_with_one_tenant() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let tenant = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
        assert!(super::tenant_issuer_matches(template, tenant));
        for other in [
            "https://login.microsoftonline.com//v2.0",
            "https://login.microsoftonline.com/a/b/v2.0",
            "https://evil.example/9188040d/v2.0",
            "https://login.microsoftonline.com/9188040d/v2.0/x",
        ] {
            assert!(!super::tenant_issuer_matches(template, other), "{other}");
        }
    }

    use super::refusal_code;

    #[test]
    fn an_error_body_is_a_refusal_and_anything_else_is_not() {
        let github = br#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/"}"#;
        assert_eq!(refusal_code(github).as_deref(), Some("bad_verification_code"));
        for body in [
            &b"{\"access_token\":1}"[..],
            b"not json",
            b"{\"error\":42}",
            b"{\"error\":\"\"}",
            b"{\"error\":\"has spaces\"}",
            b"[]",
        ] {
            assert_eq!(refusal_code(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
