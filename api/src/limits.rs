//! Per-client limits at the edge: failed authentications (API keys, the operator token)
//! a minute. A client over its limit is refused before any lookup, so guessing costs the
//! guesser, not the database. Keys already resolved (in the authenticator's cache) never
//! touch the limiter. Webhook tokens are not counted here: they are 192 random bits, and
//! Bolna posts every tenant's reports from one address, which a stranger's bad URL must not
//! be able to block.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once (about 50 bytes each); when full, expired windows are dropped,
/// and if none are, new addresses go uncounted until some expire.
const MAX_ADDRESSES: usize = 50_000;

pub struct FailureLimiter {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, Client>>,
}

/// One client's minute: when it began, the failures in it, and the lookups in flight.
struct Client {
    since: Instant,
    failures: u32,
    in_flight: u32,
}

/// Lookups of unresolved credentials one client may have in flight at once: a burst of
/// concurrent guesses adds at most this many to `per_minute`, while a service opening
/// dozens of connections with valid keys at once is not refused.
const MAX_IN_FLIGHT: u32 = 128;

/// The key of a client: its IPv4 address, or its IPv6 /64 (one host owns a whole /64, so
/// per-address counting there would be no limit at all).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl FailureLimiter {
    /// `per_minute` 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        FailureLimiter {
            per_minute,
            seen: Mutex::default(),
        }
    }

    /// Starts the lookup of a credential for `ip`; false when the client has used up its
    /// failures this minute (or has too many lookups in flight). Every `true` must be
    /// followed by [`Self::succeeded`] or [`Self::failed`].
    pub fn try_begin(&self, ip: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let key = client_key(ip);
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        if !seen.contains_key(&key) && seen.len() >= MAX_ADDRESSES {
            seen.retain(|_, c| c.in_flight > 0 || c.since.elapsed() < WINDOW);
            if seen.len() >= MAX_ADDRESSES {
                // Full of live windows: new addresses go uncounted rather than letting a
                // spray of addresses wipe the counts of the ones already blocked.
                return true;
            }
        }
        let client = seen.entry(key).or_insert(Client {
            since: Instant::now(),
            failures: 0,
            in_flight: 0,
        });
        if client.since.elapsed() >= WINDOW {
            client.since = Instant::now();
            client.failures = 0;
        }
        if client.failures >= self.per_minute || client.in_flight >= MAX_IN_FLIGHT {
            metrics::counter!("auth_rate_limited_total").increment(1);
            return false;
        }
        client.in_flight += 1;
        true
    }

    /// The credential was valid (or could not be checked): nothing counts against the client.
    pub fn succeeded(&self, ip: IpAddr) {
        self.finish(ip, false);
    }

    /// The credential was bad: one failure for the client.
    pub fn failed(&self, ip: IpAddr) {
        metrics::counter!("auth_failures_total").increment(1);
        self.finish(ip, true);
    }

    fn finish(&self, ip: IpAddr, failed: bool) {
        if self.per_minute == 0 {
            return;
        }
        if let Ok(mut seen) = self.seen.lock()
            && let Some(client) = seen.get_mut(&client_key(ip))
        {
            client.in_flight = client.in_flight.saturating_sub(1);
            if failed {
                client.failures = client.failures.saturating_add(1);
            }
        }
    }
}

/// The client behind a request: the peer, or, when the peer is one of the deployment's
/// proxies, the last `X-Forwarded-For` address that is not one of them (the ones before it
/// were written by the client and prove nothing).
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, proxies: &[IpAddr]) -> IpAddr {
    if !proxies.contains(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for").iter().take(8) {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',').take(32) {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !proxies.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 5.6.7.8, 10.0.0.9".parse().unwrap(),
        );
        let client = client_ip(proxy, &headers, &[proxy]);
        assert_eq!(client, "5.6.7.8".parse::<IpAddr>().unwrap());
        // A peer that is not a proxy is the client, whatever it claims.
        let stranger: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger);
        // Garbage in the header: the proxy itself.
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &[proxy]), proxy);
        assert_eq!(
            client_ip(proxy, &axum::http::HeaderMap::new(), &[proxy]),
            proxy
        );
    }

    #[test]
    fn counts_failures_per_address_and_per_ipv6_64() {
        let limiter = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.try_begin(a));
            limiter.failed(a);
        }
        assert!(!limiter.try_begin(a));
        assert!(limiter.try_begin(b));
        limiter.succeeded(b);
        // Valid credentials never count, however many start at once.
        for _ in 0..100 {
            assert!(limiter.try_begin(b));
        }
        for _ in 0..100 {
            limiter.succeeded(b);
        }
        // Lookups in flight are capped, so a concurrent burst cannot run unbounded.
        for _ in 0..MAX_IN_FLIGHT {
            assert!(limiter.try_begin(b));
        }
        assert!(!limiter.try_begin(b));
        // One /64 is one client.
        let v6 = FailureLimiter::new(2);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
            let ip = host.parse().unwrap();
            assert!(v6.try_begin(ip));
            v6.failed(ip);
        }
        assert!(!v6.try_begin("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(v6.try_begin("2001:db8:1:3::1".parse().unwrap()));
        assert!(FailureLimiter::new(0).try_begin(a));
    }
}
