//! The client's address: the socket's peer, unless the peer is a trusted
//! proxy; then the right-most `X-Forwarded-For` entry that is not a trusted
//! proxy. A client cannot choose its own address with a header.

use std::net::IpAddr;

use ipnet::IpNet;
use rocket::Request;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and CIDRs (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {entry:?} is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `request`, if the socket's peer is known.
    pub fn client_ip(&self, request: &Request<'_>) -> Option<IpAddr> {
        let peer = canonical(request.remote()?.ip());
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = request
            .headers()
            .get("X-Forwarded-For")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return Some(canonical(ip)),
                // Garbage where an address should be: the last trusted hop
                // is all that can be believed.
                Err(_) => return Some(peer),
            }
        }
        Some(peer)
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_cidrs_parse_and_garbage_is_refused() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.1".into(), "::1".into()])
                .unwrap();
        assert!(proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(proxies.trusts("192.168.1.1".parse().unwrap()));
        assert!(!proxies.trusts("192.168.1.2".parse().unwrap()));
        assert!(proxies.trusts("::ffff:10.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
