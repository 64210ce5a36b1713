//! Address policy for remote ICE candidates (CIDR blocks and the cap per
//! PeerConnection).

use std::net::IpAddr;

/// Which remote ICE candidates the server's PeerConnections use: a cap per
/// PeerConnection, and addresses a client must not make the server probe.
#[derive(Debug, Clone)]
pub struct CandidatePolicy {
    /// Candidates per PeerConnection.
    pub max_per_pc: usize,
    /// Networks used even though a rule would drop them.
    pub allow: Vec<IpNet>,
    /// Networks dropped besides the built-in ones.
    pub deny: Vec<IpNet>,
}

impl Default for CandidatePolicy {
    fn default() -> Self {
        CandidatePolicy {
            max_per_pc: 32,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare
/// address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (like 10.0.0.0/8)"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= width => p,
                _ => return Err(format!("`{s}`: prefix length must be 0-{width}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }
}
