//! The client's address: the socket's peer, unless the peer is a trusted
//! proxy; then the right-most `X-Forwarded-For` entry that is not a trusted
//! proxy. A client cannot choose its own address with a header.

use std::net::IpAddr;

use ipnet::IpNet;
use rocket::Request;

/// Addresses and CIDRs given in a setting (`10.0.0.1`, `10.0.0.0/8`).
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses the entries of the setting `key`.
    pub fn parse(key: &str, entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{key}: {entry:?} is not an address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is listed.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and CIDRs (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        Networks::parse("trusted_proxies", entries).map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The scheme the client used, as a trusted proxy reports it in
    /// `X-Forwarded-Proto` (its last value); `None` when the peer is not a
    /// trusted proxy or says nothing.
    pub fn forwarded_proto<'r>(&self, request: &'r Request<'_>) -> Option<&'r str> {
        let peer = request.remote()?.ip();
        if !self.trusts(peer) {
            return None;
        }
        let proto = request.headers().get("X-Forwarded-Proto").last()?;
        proto.rsplit(',').next().map(str::trim)
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
            match parse_hop(hop) {
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

/// An `X-Forwarded-For` entry: an address, or one with a port as some
/// proxies write them (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn parse_hop(hop: &str) -> Result<IpAddr, std::net::AddrParseError> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|addr| addr.ip()))
        .or_else(|err| {
            // `[2001:db8::1]` without a port.
            hop.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .ok_or(err)?
                .parse::<IpAddr>()
        })
}

/// The key a client's budget is counted under: its IPv4 address, or the /64
/// of its IPv6 address (one host holds a whole /64, so counting per address
/// would give it 2^64 budgets).
pub fn rate_limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
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

    #[test]
    fn forwarded_entries_with_ports_parse() {
        for (hop, ip) in [
            ("1.2.3.4", "1.2.3.4"),
            ("1.2.3.4:5678", "1.2.3.4"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:5678", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            assert_eq!(parse_hop(hop), Ok(ip.parse().unwrap()), "{hop}");
        }
        for garbage in ["", "unknown", "1.2.3.4:", "[1.2.3.4", "1.2.3.4:99999"] {
            assert!(parse_hop(garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_per_64_and_ipv4_per_address() {
        let key = |ip: &str| rate_limit_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:1.2.3.4"), "1.2.3.4");
        assert_ne!(key("1.2.3.4"), key("1.2.3.5"));
    }
}
