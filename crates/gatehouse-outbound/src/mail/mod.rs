//! The email channel: renders a message (text + HTML, English or French, branded) and sends it
//! over SMTP with lettre, or — in development without SMTP — writes it as an `.eml` file.
//!
//! Invariant: a message's content (links with one-time tokens) is never logged; errors name
//! the failure, never the message.

mod render;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_domain::notify::{Channel, DeliveryError, EMAIL_CHANNEL, EmailPayload};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub use render::{KINDS, MailBranding, Rendered, Renderer};

/// Where messages go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Development without SMTP: one `.eml` file per message in this directory.
    Directory(PathBuf),
}

pub struct EmailChannel {
    renderer: Renderer,
    from: Mailbox,
    transport: Transport,
}

/// Checks an SMTP URL the way [`EmailChannel::smtp`] reads it (for configuration checks).
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|error| format!("not a usable SMTP URL: {error}"))
}

/// Checks a from-address (`name@example.com` or `Name <name@example.com>`).
pub fn check_from(from: &str) -> Result<(), String> {
    from.parse::<Mailbox>().map(|_| ()).map_err(|error| format!("not an address: {error}"))
}

impl EmailChannel {
    /// SMTP at `url`: `smtp://host:port` (plain, for local sinks), `smtp://…?tls=required`
    /// (STARTTLS), `smtps://host` (implicit TLS), with `user:password@` for AUTH.
    pub fn smtp(url: &str, from: &str, renderer: Renderer) -> Result<EmailChannel, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| format!("not a usable SMTP URL: {error}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(EmailChannel {
            renderer,
            from: from.parse().map_err(|error| format!("from-address: {error}"))?,
            transport: Transport::Smtp(transport),
        })
    }

    /// Development: messages written to `dir` as `.eml` files.
    pub fn directory(dir: PathBuf, from: &str, renderer: Renderer) -> Result<EmailChannel, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        Ok(EmailChannel {
            renderer,
            from: from.parse().map_err(|error| format!("from-address: {error}"))?,
            transport: Transport::Directory(dir),
        })
    }

    fn build(&self, payload: &EmailPayload) -> Result<Message, DeliveryError> {
        let rendered = self.renderer.render(payload).map_err(DeliveryError::Permanent)?;
        let to: Mailbox = payload
            .to
            .parse()
            .map_err(|_| DeliveryError::Permanent("the recipient address is invalid".into()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|error| DeliveryError::Permanent(format!("cannot build the message: {error}")))
    }
}

#[async_trait]
impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        EMAIL_CHANNEL
    }

    async fn deliver(&self, kind: &str, payload: &serde_json::Value) -> Result<(), DeliveryError> {
        let payload: EmailPayload = serde_json::from_value(payload.clone())
            .map_err(|error| DeliveryError::Permanent(format!("malformed payload: {error}")))?;
        let message = self.build(&payload)?;
        match &self.transport {
            Transport::Smtp(transport) => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_permanent() => {
                    Err(DeliveryError::Permanent(format!("SMTP refused the message: {error}")))
                }
                Err(error) => Err(DeliveryError::Temporary(format!("SMTP: {error}"))),
            },
            Transport::Directory(dir) => {
                let name = format!(
                    "{}-{kind}.eml",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|elapsed| elapsed.as_nanos())
                        .unwrap_or_default()
                );
                let path = dir.join(name);
                tokio::fs::write(&path, message.formatted()).await.map_err(|error| {
                    DeliveryError::Temporary(format!("cannot write {}: {error}", path.display()))
                })?;
                // The file holds the link; the log line only says where it is.
                tracing::info!(kind, file = %path.display(), "development: a message was written instead of sent (no SMTP configured)");
                Ok(())
            }
        }
    }
}
