//! Which ICE candidates of a client the server's PeerConnections may use.
//!
//! The server sends STUN connectivity checks to every remote candidate, so a
//! candidate is an address the client makes the server probe. Without rules
//! one `publish-offer` with 1,000 `a=candidate` lines made the server send
//! 8,000 STUN requests to addresses of the client's choosing, loopback and the
//! server's own ports included. Here:
//!
//! - at most `MAX_CANDIDATES_PER_PC` candidates per PeerConnection and ICE
//!   generation (the count starts again when the client's ICE credentials
//!   change, i.e. after its own ICE restart);
//! - dropped: loopback, unspecified, multicast, broadcast and link-local
//!   addresses, the server's own addresses, host names (only `.local` mDNS
//!   names, and only with `ALLOW_MDNS_CANDIDATES`), and `CANDIDATE_DENY`;
//! - `CANDIDATE_ALLOW` networks are used whatever the rules above say.
//!
//! Dropping a client's candidate never prevents a connection to a server
//! that clients can reach: the client checks the server's candidates, and
//! the server learns the client's address from those checks (a
//! peer-reflexive candidate, RFC 8445 §7.3.1.3), from a real packet rather
//! than from a claim.
//!
//! Applies to trickled candidates and to `a=candidate` lines inside SDP.

use std::net::IpAddr;
use std::sync::Arc;

use signaling::CandidateInit;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;

use crate::config::CandidatePolicy;

/// The policy of the node, with its own addresses resolved once.
#[derive(Debug, Clone)]
pub struct CandidateRules {
    policy: CandidatePolicy,
    own_ips: Vec<IpAddr>,
    allow_mdns: bool,
}

impl CandidateRules {
    /// Rules for a node whose candidates carry `announced` (empty: every
    /// interface address of the host).
    pub fn new(policy: CandidatePolicy, announced: &[IpAddr], allow_mdns: bool) -> Arc<Self> {
        let mut own_ips: Vec<IpAddr> = announced.to_vec();
        if let Ok(ifaces) = webrtc::util::ifaces::ifaces() {
            own_ips.extend(ifaces.iter().filter_map(|i| i.addr.map(|a| a.ip())));
        }
        own_ips.sort();
        own_ips.dedup();
        Arc::new(CandidateRules {
            policy,
            own_ips,
            allow_mdns,
        })
    }

    /// Why a candidate address is not used, or `None` when it is.
    pub fn refuse_address(&self, address: &str) -> Option<&'static str> {
        let Ok(ip) = address.parse::<IpAddr>() else {
            return if address.ends_with(".local") {
                (!self.allow_mdns).then_some("mDNS name (ALLOW_MDNS_CANDIDATES is off)")
            } else {
                Some("not an IP address")
            };
        };
        let ip = ip.to_canonical();
        if self.policy.allow.iter().any(|n| n.contains(ip)) {
            return None;
        }
        if self.policy.deny.iter().any(|n| n.contains(ip)) {
            return Some("in CANDIDATE_DENY");
        }
        if ip.is_loopback() {
            return Some("loopback");
        }
        if ip.is_unspecified() {
            return Some("unspecified");
        }
        if ip.is_multicast() {
            return Some("multicast");
        }
        let special = match ip {
            IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if special {
            return Some("link-local or broadcast");
        }
        if self.own_ips.contains(&ip) {
            return Some("an address of this server");
        }
        None
    }
}

/// Where a candidate comes from, which decides how webrtc-rs reads it.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Trickled: `add_ice_candidate` drops a leading `candidate:` first.
    Trickled,
    /// The value of an SDP `a=candidate` line: read as it is, so in
    /// `a=candidate:candidate: 1 udp 7 127.0.0.1 9 typ host` the
    /// `candidate:` is the foundation and 127.0.0.1 the address.
    Sdp,
}

/// The address field of a candidate, read the way webrtc-ice reads it from
/// `source` (`unmarshal_candidate`: fields split on any whitespace, the
/// fifth is the address); `None` when webrtc-ice would refuse the candidate
/// anyway (fewer than eight fields).
fn address_of(candidate: &str, source: Source) -> Option<&str> {
    let value = match source {
        Source::Trickled => candidate.strip_prefix("candidate:").unwrap_or(candidate),
        Source::Sdp => candidate,
    };
    let fields: Vec<&str> = value.split_whitespace().collect();
    (fields.len() >= 8).then(|| fields[4])
}

/// The value of an `a=candidate` line as webrtc-rs's SDP parser reads it
/// (leading `\r` skipped, the value trimmed, the key before the first `:`).
fn sdp_candidate_value(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches('\r').strip_prefix("a=")?;
    let (key, value) = rest.trim().split_once(':')?;
    (key == "candidate").then_some(value)
}

/// The candidates of one PeerConnection: the rules and the count.
#[derive(Debug)]
pub struct CandidateGate {
    rules: Arc<CandidateRules>,
    /// Candidates admitted in this ICE generation (at most the cap): the
    /// same candidate again (in a pranswer and then the answer, or
    /// trickled and in SDP) is not counted twice.
    accepted: std::collections::HashSet<String>,
    dropped: usize,
    ufrag: Option<String>,
}

impl CandidateGate {
    /// A gate for a new PeerConnection.
    pub fn new(rules: Arc<CandidateRules>) -> Self {
        CandidateGate {
            rules,
            accepted: std::collections::HashSet::new(),
            dropped: 0,
            ufrag: None,
        }
    }

    /// Candidates dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The client's ICE credentials seen in a new remote description; new
    /// ones start a new count.
    pub fn remote_ufrag(&mut self, ufrag: Option<&str>) {
        if let Some(u) = ufrag {
            if self.ufrag.as_deref() != Some(u) {
                self.ufrag = Some(u.to_owned());
                self.accepted.clear();
            }
        }
    }

    /// Whether a trickled candidate line is used; counts it when it is.
    pub fn admit_line(&mut self, candidate: &str) -> Result<(), String> {
        self.admit_from(candidate, Source::Trickled)
    }

    /// Whether a candidate read from `source` is used; counts it when it is.
    fn admit_from(&mut self, candidate: &str, source: Source) -> Result<(), String> {
        let Some(address) = address_of(candidate, source) else {
            // webrtc-ice refuses it with an error the client sees; it
            // probes nothing.
            return Ok(());
        };
        if let Some(why) = self.rules.refuse_address(address) {
            self.dropped += 1;
            return Err(format!("candidate address {address} is not used: {why}"));
        }
        // The same candidate however written (prefixes, spacing).
        let bare = candidate.trim();
        let bare = bare.strip_prefix("a=").unwrap_or(bare);
        let bare = bare.strip_prefix("candidate:").unwrap_or(bare);
        let key = bare.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.accepted.contains(&key) {
            return Ok(());
        }
        if self.accepted.len() >= self.rules.policy.max_per_pc {
            self.dropped += 1;
            return Err(format!(
                "this PeerConnection has {} candidates, the limit (MAX_CANDIDATES_PER_PC)",
                self.rules.policy.max_per_pc
            ));
        }
        self.accepted.insert(key);
        Ok(())
    }

    /// Whether a trickled candidate is used.
    pub fn admit(&mut self, c: &CandidateInit) -> Result<(), String> {
        self.admit_line(&c.candidate)
    }

    /// The SDP without the `a=candidate` lines this gate does not admit.
    /// The result is read back with webrtc-rs's parser: should any refused
    /// candidate still be visible to it (a line written to slip past the
    /// text filter), the whole SDP is refused.
    pub fn filter_sdp(&mut self, sdp: &str) -> Result<String, String> {
        self.remote_ufrag(super::sdp::ice_credentials(sdp).map(|(u, _)| u).as_deref());
        let mut out = String::with_capacity(sdp.len());
        for line in sdp.split_inclusive('\n') {
            if let Some(value) = sdp_candidate_value(line) {
                if self.admit_from(value, Source::Sdp).is_err() {
                    continue;
                }
            }
            out.push_str(line);
        }
        if let Some(d) = super::client_sdp::parse(&out) {
            let session = d.attributes.iter();
            let media = d
                .media_descriptions
                .iter()
                .flat_map(|m| m.attributes.iter());
            let mut seen = std::collections::HashSet::new();
            for a in session.chain(media).filter(|a| a.key == "candidate") {
                let value = a.value.as_deref().unwrap_or("");
                if let Some(address) = address_of(value, Source::Sdp) {
                    if self.rules.refuse_address(address).is_some() {
                        return Err(format!("an SDP candidate line for {address} could not be removed; send candidates as a=candidate:<fields> lines"));
                    }
                    seen.insert(value.trim());
                }
            }
            if seen.len() > self.rules.policy.max_per_pc {
                return Err("the SDP has more candidates than MAX_CANDIDATES_PER_PC".to_owned());
            }
        }
        Ok(out)
    }
}

/// Converts a protocol candidate for the media library.
pub fn to_rtc_candidate(c: &CandidateInit) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment.clone(),
    }
}

/// Converts a media library candidate for the wire.
pub fn from_rtc_candidate(c: RTCIceCandidateInit) -> CandidateInit {
    CandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_m_line_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;

    fn rules(allow: &[&str], deny: &[&str], max: usize) -> Arc<CandidateRules> {
        Arc::new(CandidateRules {
            policy: CandidatePolicy {
                max_per_pc: max,
                allow: allow.iter().map(|n| n.parse::<IpNet>().unwrap()).collect(),
                deny: deny.iter().map(|n| n.parse::<IpNet>().unwrap()).collect(),
            },
            own_ips: vec!["10.77.0.1".parse().unwrap()],
            allow_mdns: false,
        })
    }

    fn line(addr: &str, port: u16) -> String {
        format!("candidate:1 1 udp 2122260223 {addr} {port} typ host generation 0")
    }

    #[test]
    fn hostile_addresses_dropped() {
        let r = rules(&[], &[], 100);
        for addr in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "::",
            "224.0.0.251",
            "ff02::1",
            "255.255.255.255",
            "169.254.1.1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "10.77.0.1",
            "example.com",
            "abc.local",
        ] {
            assert!(r.refuse_address(addr).is_some(), "{addr} should be dropped");
        }
        for addr in ["10.77.0.2", "192.168.1.20", "203.0.113.9", "2001:db8::5"] {
            assert_eq!(r.refuse_address(addr), None, "{addr} should be used");
        }
    }

    #[test]
    fn mdns_names_only_with_the_setting() {
        let c = |s: &str| CandidateInit {
            candidate: s.into(),
            sdp_mid: None,
            sdp_m_line_index: None,
            username_fragment: None,
        };
        let mdns = c("candidate:1 1 udp 1 abc.local 5000 typ host");
        let plain = c("candidate:1 1 udp 1 10.0.0.1 5000 typ host");
        let mut off = CandidateGate::new(rules(&[], &[], 10));
        assert!(off.admit(&mdns).is_err());
        assert!(off.admit(&plain).is_ok());
        let mut on = CandidateGate::new(Arc::new(CandidateRules {
            allow_mdns: true,
            ..Arc::unwrap_or_clone(rules(&[], &[], 10))
        }));
        assert!(on.admit(&mdns).is_ok());
    }

    #[test]
    fn allow_and_deny_lists() {
        let r = rules(&["127.0.0.0/8"], &["192.168.0.0/16"], 100);
        assert_eq!(r.refuse_address("127.0.0.5"), None);
        assert!(r.refuse_address("192.168.3.4").is_some());
        assert_eq!(r.refuse_address("172.16.0.1"), None);
    }

    #[test]
    fn capped_per_generation() {
        let mut g = CandidateGate::new(rules(&[], &[], 2));
        g.remote_ufrag(Some("a"));
        assert!(g.admit_line(&line("10.0.0.1", 1)).is_ok());
        assert!(g.admit_line(&line("10.0.0.2", 1)).is_ok());
        assert!(g.admit_line(&line("10.0.0.3", 1)).is_err());
        g.remote_ufrag(Some("a"));
        assert!(g.admit_line(&line("10.0.0.3", 1)).is_err());
        // The same candidate again is not a new one.
        assert!(g.admit_line(&format!("a={}", line("10.0.0.1", 1))).is_ok());
        g.remote_ufrag(Some("b"));
        assert!(g.admit_line(&line("10.0.0.3", 1)).is_ok());
        assert_eq!(g.dropped(), 2);
    }

    #[test]
    fn sdp_filtered() {
        let mut g = CandidateGate::new(rules(&[], &[], 2));
        let mut sdp = String::from("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:u\r\n");
        for i in 0..1000 {
            sdp.push_str(&format!("a={}\r\n", line("127.0.0.1", 1000 + i)));
        }
        sdp.push_str(&format!("a={}\r\n", line("10.1.1.1", 5)));
        sdp.push_str(&format!("a={}\r\n", line("10.1.1.2", 5)));
        sdp.push_str(&format!("a={}\r\n", line("10.1.1.3", 5)));
        sdp.push_str("a=end-of-candidates\r\n");
        let out = g.filter_sdp(&sdp).expect("filtered");
        assert_eq!(out.matches("a=candidate:").count(), 2, "{out}");
        assert!(out.contains("10.1.1.1 5") && out.contains("10.1.1.2 5"));
        assert!(out.ends_with("a=end-of-candidates\r\n"));
        assert_eq!(g.dropped(), 1001);
    }

    #[test]
    fn sdp_lines_read_like_the_parser_reads_them() {
        let mut g = CandidateGate::new(rules(&[], &[], 5));
        let base = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n";
        for sneaky in [
            "a=  candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n",
            "\ra=candidate:1 1 udp 1 127.0.0.1 5001 typ host\r\n",
            "a=candidate: 1 1 udp 1 127.0.0.1 5002 typ host\r\n",
            "a=candidate:1 1 udp 1 abc.local 5003 typ host\r\n",
            // webrtc-rs reads an SDP value as it is: here `candidate:` is the
            // foundation and 127.0.0.1 the address (only a trickled line
            // loses the prefix). tests/fuzz checks the gate against
            // webrtc-rs's own reading.
            "a=candidate:candidate: 1 udp 7 127.0.0.1 5006 typ host\r\n",
        ] {
            let out = g.filter_sdp(&format!("{base}{sneaky}")).expect("filtered");
            assert!(
                !out.contains("127.0.0.1 500") && !out.contains(".local"),
                "{sneaky:?} kept: {out}"
            );
        }
        // Trickled, with the space webrtc-ice skips.
        assert!(g
            .admit_line("candidate: 1 1 udp 1 127.0.0.1 5004 typ host")
            .is_err());
        assert!(g
            .admit_line("candidate:1 1 udp 1 10.9.9.9 5005 typ host")
            .is_ok());
    }
}
