//! Known devices: the devices (user agent + network) each user signed in from, kept so that a
//! sign-in from a new one sends a notice. A "device" here is only that; trusted browsers
//! (second factor skipped) live in `mfa`, and the OAuth device flow in `oauth::device_flow`.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_crypto::Digester;

use crate::principal::RequestContext;
use crate::store::StoreError;
use crate::unit_of_work::KnownDevice;
use crate::users::record::SignInFacts;

/// Digest purpose of known devices (user agent + IP class).
pub const KNOWN_DEVICE_DIGEST_PURPOSE: &str = "device";

#[async_trait]
pub trait KnownDeviceStore: Send + Sync {
    /// `(whether the user has any known device, whether this one is known)`.
    async fn device_seen(
        &self,
        user_id: &str,
        device_digest: &[u8],
    ) -> Result<(bool, bool), StoreError>;
}

/// What a sign-in learns about its device.
#[derive(Debug, Clone)]
pub struct DeviceCheck {
    /// The device to remember (or to refresh) with the session.
    pub device: KnownDevice,
    /// The user has signed in before, never from this device: send a notice.
    pub is_new: bool,
}

pub struct KnownDevices {
    store: Arc<dyn KnownDeviceStore>,
    digester: Digester,
}

impl KnownDevices {
    /// `digester` has purpose [`KNOWN_DEVICE_DIGEST_PURPOSE`].
    pub fn new(store: Arc<dyn KnownDeviceStore>, digester: Digester) -> Self {
        Self { store, digester }
    }

    /// The keyed digest of the request's device: its user agent and the class of its address
    /// (the /24 of IPv4, the /48 of IPv6), so a new address in the same network is the same
    /// device.
    pub fn digest(&self, context: &RequestContext) -> Vec<u8> {
        let class =
            context.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()).map(|ip| match ip {
                IpAddr::V4(v4) => {
                    let [a, b, c, _] = v4.octets();
                    format!("{a}.{b}.{c}.0/24")
                }
                IpAddr::V6(v6) => {
                    let segments = v6.segments();
                    format!("{:x}:{:x}:{:x}::/48", segments[0], segments[1], segments[2])
                }
            });
        let text = format!(
            "{}\n{}",
            context.user_agent.as_deref().unwrap_or(""),
            class.unwrap_or_default()
        );
        self.digester.digest(text.as_bytes()).to_vec()
    }

    /// The request's device, seen by `user_id` now.
    pub fn device(&self, user_id: &str, context: &RequestContext, now: i64) -> KnownDevice {
        KnownDevice { user_id: user_id.to_owned(), digest: self.digest(context), seen_at: now }
    }

    /// Whether the request's device is new to a user who has signed in before. `facts`, when
    /// the sign-in read them with the account, spare the query.
    pub async fn check(
        &self,
        user_id: &str,
        context: &RequestContext,
        now: i64,
        facts: Option<SignInFacts>,
    ) -> Result<DeviceCheck, StoreError> {
        let device = self.device(user_id, context, now);
        let (any_known, this_known) = match facts {
            Some(facts) => (facts.any_known_device, facts.this_device_known),
            None => self.store.device_seen(user_id, &device.digest).await?,
        };
        Ok(DeviceCheck { device, is_new: any_known && !this_known })
    }
}
