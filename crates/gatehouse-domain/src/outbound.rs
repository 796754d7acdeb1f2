//! The SSRF rule, one for every outbound call whose URL is not the operator's own
//! configuration (webhooks now; client metadata documents, back-channel logout and
//! admin-added identity providers later): `https` in production; a host that resolves to a
//! loopback, private, link-local, shared, multicast, documentation or cloud-metadata address
//! is refused — when the URL is registered and again at each call, on the addresses the call
//! then connects to (DNS rebinding) — unless the operator allows private targets
//! (`GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS`, which tests set).
//!
//! `is_public_address` is the rule on one address; [`OutboundGuard`] is the port that resolves
//! a URL's host and applies it (`gatehouse-outbound`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use async_trait::async_trait;

/// What the rule allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboundPolicy {
    /// Plain `http` is refused (production).
    pub require_https: bool,
    /// Loopback and private targets are allowed (development, tests).
    pub allow_private_targets: bool,
}

/// Resolves and checks a URL under the [`OutboundPolicy`].
#[async_trait]
pub trait OutboundGuard: Send + Sync {
    /// The addresses to connect to for `url`, all allowed; an explanation (safe to show the
    /// operator) when the URL or any address it resolves to is refused.
    async fn check(&self, url: &str) -> Result<Vec<SocketAddr>, String>;
}

/// The URL's form under the policy: absolute `https` (or `http` when allowed), a host, no
/// credentials. Answers the host and port to resolve.
pub fn check_url_form(url: &str, policy: OutboundPolicy) -> Result<(String, u16), String> {
    let parsed = url::Url::parse(url).map_err(|_| "not an absolute URL".to_owned())?;
    match parsed.scheme() {
        "https" => {}
        "http" if !policy.require_https => {}
        "http" => return Err("https is required".into()),
        _ => return Err("only http(s) URLs".into()),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not allowed".into());
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the URL names no host".into()),
    };
    let port = parsed.port_or_known_default().ok_or_else(|| "no port".to_owned())?;
    Ok((host, port))
}

/// Whether an address may be called when private targets are not allowed: not loopback,
/// unspecified, private (RFC 1918, unique local), link-local (cloud metadata services live
/// at 169.254.169.254 and fd00:ec2::254), shared (CGNAT), benchmarking, documentation,
/// multicast, broadcast or reserved; IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 among them)
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 of anything
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "224.0.0.1",
        ] {
            assert!(!is_public_address(refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public_address(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn urls_must_be_https_without_credentials_in_production() {
        let production = OutboundPolicy { require_https: true, allow_private_targets: false };
        assert_eq!(
            check_url_form("https://hooks.example.com/in", production).unwrap(),
            ("hooks.example.com".to_owned(), 443)
        );
        assert!(check_url_form("http://hooks.example.com/in", production).is_err());
        assert!(check_url_form("https://user:pw@hooks.example.com/", production).is_err());
        assert!(check_url_form("ftp://hooks.example.com/", production).is_err());
        assert!(check_url_form("/relative", production).is_err());
        let development = OutboundPolicy { require_https: false, allow_private_targets: true };
        assert_eq!(
            check_url_form("http://127.0.0.1:9000/x", development).unwrap(),
            ("127.0.0.1".to_owned(), 9000)
        );
    }
}
