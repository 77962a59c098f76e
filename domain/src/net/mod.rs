//! Outbound requests to addresses a tenant chose (a custom provider base URL today;
//! webhook endpoints and LLM gateways later) never reach loopback, private, link-local,
//! shared, multicast or cloud-metadata addresses, unless the deployment names the host in
//! `PROVIDER_BASE_URL_ALLOWLIST`. The check runs when the URL is set (with a clear error)
//! and again at connect time through [`GuardedResolver`], so a name that later resolves
//! elsewhere (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Why an outbound URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("must be an http:// or https:// URL with a host")]
    NotHttp,
    #[error(
        "{0} is a private, loopback, link-local or metadata address; this server does not send there"
    )]
    Private(String),
    #[error("{0} could not be resolved")]
    Unresolvable(String),
}

/// The deployment's exceptions: host names or IP addresses (lower case) that may be
/// private (a self-hosted gateway on the internal network, local fakes in tests).
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowlist: Arc<Vec<String>>,
}

/// Whether `ip` is an address anyone on the internet could be: not loopback, private
/// (RFC 1918, ULA), link-local (which holds 169.254.169.254, the metadata service),
/// shared (CGNAT), unspecified, broadcast, multicast, documentation or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            // IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) forms.
            if seg[..6] == [0; 6] || seg[..6] == [0, 0, 0, 0, 0xffff, 0] {
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return !v6.is_loopback() && !v6.is_unspecified() && is_public_v4(v4);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64 onto IPv4
                || (seg[0] == 0x2002) // 6to4 onto IPv4
                || (seg[0] == 0x2001 && seg[1] == 0)) // Teredo
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

impl OutboundPolicy {
    pub fn new(allowlist: Vec<String>) -> Self {
        OutboundPolicy {
            allowlist: Arc::new(
                allowlist
                    .into_iter()
                    .map(|h| h.trim().trim_matches(['[', ']']).to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    fn allowed_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowlist.contains(&host)
    }

    /// Checks a URL without resolving it: the scheme, and the host when it is an IP
    /// literal (names are checked when resolved). Cheap enough for every request.
    pub fn check_literal(&self, url: &str) -> Result<reqwest::Url, OutboundError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| OutboundError::NotHttp)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::NotHttp);
        }
        let host = match parsed.host() {
            Some(h) => h,
            None => return Err(OutboundError::NotHttp),
        };
        let literal = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && !is_public(ip)
            && !self.allowed_host(&ip.to_string())
        {
            return Err(OutboundError::Private(ip.to_string()));
        }
        Ok(parsed)
    }

    /// Checks a URL and every address its host resolves to (when a tenant sets it).
    pub async fn check(&self, url: &str) -> Result<(), OutboundError> {
        let parsed = self.check_literal(url)?;
        let Some(url::Host::Domain(name)) = parsed.host() else {
            return Ok(());
        };
        if self.allowed_host(name) {
            return Ok(());
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| OutboundError::Unresolvable(name.to_owned()))?
            .collect();
        if addrs.is_empty() {
            return Err(OutboundError::Unresolvable(name.to_owned()));
        }
        match addrs.iter().find(|a| !is_public(a.ip())) {
            Some(private) => Err(OutboundError::Private(format!("{name} ({})", private.ip()))),
            None => Ok(()),
        }
    }

    /// A resolver for reqwest that drops non-public addresses of names not allowlisted.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy: self.clone(),
        })
    }
}

pub struct GuardedResolver {
    policy: OutboundPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allowed_host(&host);
            let kept: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allowed || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(OutboundError::Private(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::ffff:0:10.0.0.1",
            "2001:0:4136:e378::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_after_resolution_and_the_allowlist_wins() {
        let policy = OutboundPolicy::new(vec![]);
        for url in [
            "http://127.0.0.1:8080",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:9000",
            "http://0x7f000001",
            "http://2130706433",
        ] {
            assert!(policy.check(url).await.is_err(), "{url}");
        }
        assert_eq!(
            policy.check("ftp://example.com").await,
            Err(OutboundError::NotHttp)
        );
        let allowed = OutboundPolicy::new(vec!["127.0.0.1".into(), "LocalHost".into()]);
        assert!(allowed.check("http://127.0.0.1:8080").await.is_ok());
        assert!(allowed.check("http://localhost:8080").await.is_ok());
    }
}
