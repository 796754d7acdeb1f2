//! Verify Gatehouse access tokens in a Rust resource server, offline.
//!
//! A [`Verifier`] fetches the issuer's signing keys (its JWKS, found through the discovery
//! document) once, keeps them for as long as the issuer's `Cache-Control` allows, and
//! verifies each token locally: the signature with the published key its `kid` names and only
//! with that key's algorithm (never `none`, never HMAC), the `typ: at+jwt` header of RFC 9068,
//! `iss` exactly, `aud` against your audiences, `exp` and `nbf` with a leeway. When the issuer
//! rotates its key, the first token signed by the new key makes the verifier fetch the set
//! again — at most once per interval, so made-up `kid`s cannot flood the issuer — and tokens
//! signed by the old key keep verifying for as long as the issuer still publishes it.
//!
//! Opaque tokens, such as Gatehouse API keys (`gtk_…`), go through the same
//! [`Verifier::verify`] when introspection (RFC 7662) is configured: the verifier asks the
//! issuer as a confidential client and caches the answer briefly.
//!
//! ```no_run
//! use gatehouse_verify::Verifier;
//!
//! # async fn example(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://auth.example.com")
//!     // Gatehouse's first-party tokens carry `tokens.audience`, by default the issuer URL.
//!     .audience("https://auth.example.com")
//!     // Optional: accept API keys too, asking the issuer as this client.
//!     .introspection("orders-api", "gtc_…")
//!     .build()?;
//!
//! let claims = verifier.verify(token).await?;
//! if claims.has_scope("orders:read") && claims.has_permission("orders:read") {
//!     println!("{} may read the orders of {:?}", claims.sub, claims.org_slug);
//! }
//! # Ok(()) }
//! ```
//!
//! With the `axum` feature (on by default), [`VerifyLayer`] protects a router and the
//! [`Claims`] / [`VerifiedToken`] extractors hand each handler its caller; a refusal is a 401
//! with `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750) and a problem+json body
//! (RFC 9457) with a stable `code`, and [`Claims::require_scope`] answers 403
//! `insufficient_scope`. See `examples/axum_resource_server.rs`.
//!
//! What is checked, and what is not:
//! - Tokens are checked as they were when issued: a JWT stays valid until its `exp` even if
//!   its session is revoked (Gatehouse keeps access tokens short for this reason). Introspected
//!   tokens are as fresh as the cache's lifetime (30 s by default).
//! - [`VerifyError::IssuerUnavailable`] means the issuer could not be reached and nothing
//!   usable was cached: answer 503, not 401. A key set already fetched stays in use while the
//!   issuer is unreachable.

mod builder;
mod claims;
mod dpop;
mod error;
mod fetch;
mod introspection;
mod jwks;
mod settings;
mod verifier;

#[cfg(feature = "axum")]
mod axum_layer;
#[cfg(feature = "axum")]
mod resource;

pub use builder::{ACCESS_TOKEN_TYPE, DEFAULT_ALGORITHMS, VerifierBuilder};
pub use claims::{Actor, Claims, Confirmation};
pub use error::{ConfigError, Forbidden, VerifyError};
/// The JWS algorithms, as jsonwebtoken names them (for [`VerifierBuilder::algorithms`]).
pub use jsonwebtoken::Algorithm;
pub use verifier::{TokenKind, VerifiedToken, Verifier};

#[cfg(feature = "axum")]
pub use axum_layer::{VerifyLayer, VerifyService, bearer_token};
#[cfg(feature = "axum")]
pub use resource::ProtectedResource;

/// The README's examples compile (`cargo test --doc`; they use the axum integration).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
