//! Outbound adapters: the code that talks to the outside world on the domain's behalf, each
//! behind a port that `gatehouse-domain` defines — email (`mail`, a notification `Channel`),
//! SMS (`sms`, a `Channel`) and the breached-password API (`breach`, a
//! `BreachedPasswordCheck`), webhooks (`webhook`: the SSRF guard and the webhook `Channel`),
//! back-channel logout (`backchannel`, the logout-token `Channel`), client ID metadata
//! documents (`documents`, the `DocumentFetcher`) and upstream identity providers (`upstream`, the federation `Upstream`).
//!
//! Invariant: this crate may depend only on `gatehouse-domain` (and `gatehouse-crypto` if an
//! adapter needs it), never on the store, the HTTP layer or the binary; the binary picks the
//! adapters and hands them to the domain services in `app::build`.

pub mod backchannel;
pub mod breach;
pub mod documents;
pub mod event_stream;
pub mod mail;
pub mod sms;
pub mod upstream;
pub mod webhook;

pub use backchannel::BackchannelLogoutChannel;
pub use breach::HibpClient;
pub use documents::ClientDocumentFetcher;
pub use event_stream::{NatsChannel, NatsReadiness};
pub use mail::{EmailChannel, MailBranding, Renderer, check_from, check_smtp_url};
pub use sms::{TwilioChannel, TwilioSettings};
pub use upstream::UpstreamClient;
pub use webhook::{TargetGuard, WebhookChannel};
