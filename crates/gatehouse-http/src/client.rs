//! Who is calling: the client IP (from the socket, or from `X-Forwarded-For` when the socket
//! peer is a trusted proxy), the user agent and the request id, as a domain `RequestContext`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use gatehouse_domain::principal::RequestContext;
use ipnet::IpNet;
use tower_http::request_id::RequestId;

use crate::error::ApiError;
use crate::locale::{Locale, accept_language};
use crate::state::AppState;

const MAX_USER_AGENT_LENGTH: usize = 512;

/// The caller's context, extracted from every request that needs it.
#[derive(Debug, Clone)]
pub struct Client(pub RequestContext);

/// The client's address. Only a trusted proxy's `X-Forwarded-For` is believed: walking it from
/// the right, the first address that is not a trusted proxy is the client. An entry that does
/// not parse ends the walk: whatever lies to its left was not written by a proxy we can vouch
/// for (a client may send its own header with an address of its choice before the garbage), so
/// the client is the nearest hop to the garbage's right that parsed (or the peer).
pub fn client_ip(parts: &Parts, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in parts.headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            // A header that is not even text: nothing at or left of it can be believed.
            entries.clear();
            entries.push("");
            continue;
        };
        entries.extend(value.split(','));
    }
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !trusted(&ip) {
            break;
        }
    }
    Some(client)
}

pub fn request_context(parts: &Parts, trusted_proxies: &[IpNet]) -> RequestContext {
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(MAX_USER_AGENT_LENGTH).collect());
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(str::to_owned);
    // The language of messages sent on the caller's behalf: the same negotiation as the
    // hosted pages (without their `lang` parameter).
    let locale = accept_language(&parts.headers)
        .and_then(Locale::from_accept_language)
        .map(|locale| locale.code().to_owned());
    RequestContext {
        ip: client_ip(parts, trusted_proxies).map(|ip| ip.to_string()),
        user_agent,
        request_id,
        locale,
        dpop_jkt: parts.extensions.get::<VerifiedDpopKey>().map(|key| key.0.clone()),
    }
}

/// The key (thumbprint) of the DPoP proof a route's middleware verified for this request;
/// [`request_context`] carries it to the domain (`RequestContext::dpop_jkt`).
#[derive(Debug, Clone)]
pub(crate) struct VerifiedDpopKey(pub String);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(request_context(parts, &state.settings.trusted_proxies)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut request = axum::http::Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(peer.parse().unwrap()));
        parts
    }

    fn check(peer: &str, forwarded: Option<&str>, trusted: &[&str], expected: &str) {
        let trusted: Vec<IpNet> = trusted.iter().map(|net| net.parse().unwrap()).collect();
        let ip = client_ip(&parts(peer, forwarded), &trusted).unwrap();
        assert_eq!(
            ip.to_string(),
            expected,
            "peer {peer}, forwarded {forwarded:?}, trusted {trusted:?}"
        );
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        // No trusted proxy: the header is ignored, whatever it claims.
        check("203.0.113.9:5000", Some("1.2.3.4"), &[], "203.0.113.9");
        // The peer is a trusted proxy: the rightmost untrusted address is the client.
        check("10.0.0.2:5000", Some("198.51.100.7"), &["10.0.0.0/8"], "198.51.100.7");
        // A client-supplied spoof on the left is skipped.
        check(
            "10.0.0.2:5000",
            Some("1.1.1.1, 198.51.100.7, 10.0.0.3"),
            &["10.0.0.0/8"],
            "198.51.100.7",
        );
        // A trusted peer without the header is the client.
        check("10.0.0.2:5000", None, &["10.0.0.0/8"], "10.0.0.2");
        // Garbage to the left of the client does not matter.
        check("10.0.0.2:5000", Some("not-an-ip, 198.51.100.8"), &["10.0.0.2/32"], "198.51.100.8");
    }

    /// Regression (#19, finding 8): an unparsable entry used to be skipped, so a client could
    /// send `X-Forwarded-For: <spoof>, garbage` and be taken for `<spoof>`. The walk now stops
    /// at the garbage: the nearest parsed hop to its right (or the peer) is the client.
    #[test]
    fn forwarded_for_stops_at_the_first_unparsable_entry() {
        check("10.0.0.2:5000", Some("1.1.1.1, garbage"), &["10.0.0.0/8"], "10.0.0.2");
        check("10.0.0.2:5000", Some("1.1.1.1, garbage, 10.0.0.3"), &["10.0.0.0/8"], "10.0.0.3");
        check("10.0.0.2:5000", Some("1.1.1.1,, 10.0.0.3"), &["10.0.0.0/8"], "10.0.0.3");
        check(
            "10.0.0.2:5000",
            Some("1.1.1.1, 198.51.100.7:80, 10.0.0.3"),
            &["10.0.0.0/8"],
            "10.0.0.3",
        );
    }
}
