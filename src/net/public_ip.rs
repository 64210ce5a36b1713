//! `PUBLIC_IP`: the address clients reach when this node's interface
//! address is behind a 1:1 NAT (a cloud VM's private address, a container
//! on a bridge network).
//!
//! rheomesh only filters the host candidates ICE gathers by interface
//! address, and gives no access to webrtc-rs's NAT 1:1 setting, so the
//! mapping is applied where our code sees what the server sends: every
//! server ICE candidate (trickled, and `a=candidate` lines in SDP) and the
//! SDP's `c=` lines carry the public address instead of the interface
//! address, with the port unchanged (a 1:1 NAT keeps ports). The server
//! still binds the interface address. The interface address is replaced,
//! not offered next to the public one: clients behind the same NAT are
//! the rare case, and the private address would only leak the internal
//! network and cost every client a connectivity check that fails.
//!
//! Forms: `PUBLIC` maps every interface address of its family (IPv4 or
//! IPv6) to `PUBLIC`; `PUBLIC/PRIVATE` maps one interface address (several
//! such pairs for several interfaces); `auto` asks `STUN_URL` once at start.

use std::net::IpAddr;

/// `PUBLIC_IP` as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PublicIpSetting {
    /// Unset: candidates carry the interface addresses.
    #[default]
    Off,
    /// Fixed mappings.
    Static(NatMap),
    /// Discover the public IPv4 address through this STUN server at start.
    Auto {
        /// `host:port` of the STUN server.
        stun_server: String,
    },
}

/// Interface address -> public address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatMap {
    /// `PUBLIC/PRIVATE` pairs: (private, public).
    pairs: Vec<(IpAddr, IpAddr)>,
    /// Bare `PUBLIC` entries, at most one per family.
    any_v4: Option<IpAddr>,
    any_v6: Option<IpAddr>,
}

impl NatMap {
    /// Every interface address of `public`'s family maps to it.
    pub fn all_to(public: IpAddr) -> NatMap {
        let mut m = NatMap::default();
        match public {
            IpAddr::V4(_) => m.any_v4 = Some(public),
            IpAddr::V6(_) => m.any_v6 = Some(public),
        }
        m
    }

    /// Parses the entries of `PUBLIC_IP` (without `auto`).
    pub fn parse(entries: &[String]) -> Result<NatMap, Vec<String>> {
        let mut m = NatMap::default();
        let mut errors = Vec::new();
        let ip = |s: &str, errors: &mut Vec<String>| match s.trim().parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                errors.push(format!("PUBLIC_IP: `{s}` cannot be a public address"));
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                errors.push(format!(
                    "PUBLIC_IP: `{s}` is not an IP address (forms: PUBLIC, PUBLIC/PRIVATE, auto)"
                ));
                None
            }
        };
        for entry in entries {
            match entry.split_once('/') {
                Some((public, private)) => {
                    let (Some(public), Some(private)) =
                        (ip(public, &mut errors), ip(private, &mut errors))
                    else {
                        continue;
                    };
                    if public.is_ipv4() != private.is_ipv4() {
                        errors.push(format!("PUBLIC_IP: `{entry}` maps between IPv4 and IPv6"));
                    } else if m.pairs.iter().any(|(p, _)| *p == private) {
                        errors.push(format!("PUBLIC_IP: {private} is mapped twice"));
                    } else {
                        m.pairs.push((private, public));
                    }
                }
                None => {
                    let Some(public) = ip(entry, &mut errors) else {
                        continue;
                    };
                    let slot = if public.is_ipv4() {
                        &mut m.any_v4
                    } else {
                        &mut m.any_v6
                    };
                    if slot.is_some() {
                        errors.push(format!(
                            "PUBLIC_IP: more than one {} address without /PRIVATE; \
                             map each interface address with PUBLIC/PRIVATE",
                            if public.is_ipv4() { "IPv4" } else { "IPv6" }
                        ));
                    }
                    *slot = Some(public);
                }
            }
        }
        if errors.is_empty() {
            Ok(m)
        } else {
            Err(errors)
        }
    }

    /// No mapping at all.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.any_v4.is_none() && self.any_v6.is_none()
    }

    /// The interface addresses named by `PUBLIC/PRIVATE` pairs.
    pub fn private_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.pairs.iter().map(|(private, _)| *private)
    }

    /// Every public address.
    pub fn public_addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.pairs.iter().map(|(_, p)| *p).collect();
        v.extend(self.any_v4);
        v.extend(self.any_v6);
        v
    }

    /// The public address of interface address `ip`, if it has one.
    pub fn map(&self, ip: IpAddr) -> Option<IpAddr> {
        // `0.0.0.0` (`c=` before any candidate) is no interface address.
        if ip.is_unspecified() {
            return None;
        }
        if let Some((_, public)) = self.pairs.iter().find(|(p, _)| *p == ip) {
            return Some(*public);
        }
        match ip {
            IpAddr::V4(_) => self.any_v4,
            IpAddr::V6(_) => self.any_v6,
        }
    }

    /// A candidate (`candidate:…`, with or without `a=`) with its
    /// connection address mapped; anything else unchanged. Only host
    /// candidates carry an interface address; `raddr` stays (it is
    /// informational and webrtc-rs already writes `0.0.0.0` there).
    pub fn rewrite_candidate(&self, line: &str) -> Option<String> {
        let body = line.strip_prefix("a=").unwrap_or(line);
        if !body.starts_with("candidate:") {
            return None;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        // foundation component transport priority ADDRESS port typ TYPE ...
        let typ = fields.iter().position(|f| *f == "typ")?;
        if typ != 6 || fields.get(7) != Some(&"host") {
            return None;
        }
        let public = self.map(fields[4].parse().ok()?)?;
        let public = public.to_string();
        let mut out = fields;
        out[4] = &public;
        Some(out.join(" "))
    }

    /// SDP with every host candidate and `c=` line mapped.
    pub fn rewrite_sdp(&self, sdp: &str) -> String {
        if self.is_empty() {
            return sdp.to_owned();
        }
        let mut out = String::with_capacity(sdp.len() + 64);
        for line in sdp.split_inclusive('\n') {
            let (text, end) = match line.strip_suffix("\r\n") {
                Some(t) => (t, "\r\n"),
                None => match line.strip_suffix('\n') {
                    Some(t) => (t, "\n"),
                    None => (line, ""),
                },
            };
            let mapped = if text.starts_with("a=candidate:") {
                self.rewrite_candidate(text)
            } else if let Some(rest) = text.strip_prefix("c=IN ") {
                // c=IN IP4 10.0.0.5 (a multicast TTL suffix never appears
                // in WebRTC SDP; such a line is left alone).
                rest.split_once(' ').and_then(|(_family, addr)| {
                    let public = self.map(addr.parse().ok()?)?;
                    let family = if public.is_ipv4() { "IP4" } else { "IP6" };
                    Some(format!("c=IN {family} {public}"))
                })
            } else {
                None
            };
            out.push_str(mapped.as_deref().unwrap_or(text));
            out.push_str(end);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[&str]) -> Result<NatMap, Vec<String>> {
        NatMap::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms() {
        let m = parse(&["203.0.113.10"]).unwrap();
        assert_eq!(
            m.map("10.0.0.5".parse().unwrap()),
            Some("203.0.113.10".parse().unwrap())
        );
        assert_eq!(m.map("fd00::5".parse().unwrap()), None);
        let m = parse(&[
            "203.0.113.10/10.0.0.5",
            "198.51.100.7/10.0.1.5",
            "2001:db8::1",
        ])
        .unwrap();
        assert_eq!(
            m.map("10.0.1.5".parse().unwrap()),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(m.map("10.0.2.5".parse().unwrap()), None);
        assert_eq!(
            m.map("fd00::5".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(m.public_addresses().len(), 3);
        let errors = parse(&["1.2.3.4", "5.6.7.8", "x", "1.2.3.4/::1", "0.0.0.0"]).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn candidates_keep_their_port_and_everything_else() {
        let m = NatMap::all_to("203.0.113.10".parse().unwrap());
        let c = "candidate:167090039 1 udp 2130706431 10.0.0.5 50004 typ host generation 0 ufrag x";
        assert_eq!(
            m.rewrite_candidate(c).unwrap(),
            "candidate:167090039 1 udp 2130706431 203.0.113.10 50004 typ host generation 0 ufrag x"
        );
        // Not host, not a candidate, malformed, unmapped family: unchanged.
        let srflx =
            "candidate:1 1 udp 1694498815 198.51.100.1 50004 typ srflx raddr 0.0.0.0 rport 50004";
        assert_eq!(m.rewrite_candidate(srflx), None);
        assert_eq!(m.rewrite_candidate("candidate:1 1 udp"), None);
        assert_eq!(
            m.rewrite_candidate("candidate:1 1 udp 1 fd00::1 5 typ host"),
            None
        );
        assert_eq!(m.rewrite_candidate("a=mid:0"), None);
    }

    #[test]
    fn sdp_lines() {
        let m = NatMap::all_to("203.0.113.10".parse().unwrap());
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   c=IN IP4 10.0.0.5\r\na=candidate:1 1 udp 2130706431 10.0.0.5 50004 typ host\r\n\
                   a=end-of-candidates\r\n";
        let out = m.rewrite_sdp(sdp);
        assert_eq!(
            out,
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             c=IN IP4 203.0.113.10\r\na=candidate:1 1 udp 2130706431 203.0.113.10 50004 typ host\r\n\
             a=end-of-candidates\r\n"
        );
        assert_eq!(NatMap::default().rewrite_sdp(sdp), sdp);
        // c=IN IP4 0.0.0.0 (no address yet) is not an interface address.
        assert_eq!(
            m.rewrite_sdp("c=IN IP4 0.0.0.0\r\n"),
            "c=IN IP4 0.0.0.0\r\n"
        );
    }
}
