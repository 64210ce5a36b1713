//! SDP and candidate chores: reading `a=candidate` lines, the one-address
//! rule for what a remote side offers, and the ICE ufrag.
//!
//! Network rule: a remote candidate that is not UDP on the one address a
//! peer may use never reaches ICE, so no connectivity check is ever sent
//! anywhere else.

use std::net::IpAddr;

/// The fields of an `a=candidate` line (with or without `a=`) that the
/// one-address rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateFields<'a> {
    /// `udp` or `tcp` (any case).
    pub transport: &'a str,
    /// The connection address.
    pub address: &'a str,
    /// The `raddr` value, if the line has one.
    pub raddr: Option<&'a str>,
}

/// Parses a candidate line; `None` if it is not one (fewer than six fields
/// after `candidate:`).
pub fn candidate_fields(line: &str) -> Option<CandidateFields<'_>> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    let rest = line.strip_prefix("candidate:")?;
    let toks: Vec<&str> = rest.split_whitespace().collect();
    if toks.len() < 6 {
        return None;
    }
    let raddr = toks
        .iter()
        .position(|t| *t == "raddr")
        .and_then(|i| toks.get(i + 1))
        .copied();
    Some(CandidateFields {
        transport: toks[2],
        address: toks[4],
        raddr,
    })
}

/// Whether a candidate (with or without `a=`) is UDP on `ip`.
pub fn candidate_allowed(candidate: &str, ip: IpAddr) -> bool {
    candidate_on_any(candidate, &[ip])
}

/// Whether a candidate (with or without `a=`) is UDP on one of `ips`.
pub fn candidate_on_any(candidate: &str, ips: &[IpAddr]) -> bool {
    candidate_fields(candidate).is_some_and(|f| {
        f.transport.eq_ignore_ascii_case("udp")
            && f.address.parse::<IpAddr>().is_ok_and(|a| ips.contains(&a))
    })
}

/// Drops the `a=candidate` lines that are not UDP on `ip`, handing each
/// dropped line (trimmed) to `dropped`.
pub fn filter_candidates(sdp: &str, ip: IpAddr, dropped: impl FnMut(&str)) -> String {
    filter_candidates_on_any(sdp, &[ip], dropped)
}

/// Drops the `a=candidate` lines that are not UDP on one of `ips`.
pub fn filter_candidates_on_any(
    sdp: &str,
    ips: &[IpAddr],
    mut dropped: impl FnMut(&str),
) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with("a=candidate:") && !candidate_on_any(t, ips) {
            dropped(t);
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The first `a=ice-ufrag` of an SDP.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "10.77.0.1";

    fn ip() -> IpAddr {
        IP.parse().unwrap() // a valid literal
    }

    #[test]
    fn fields_of_a_srflx_line() {
        let f = candidate_fields(
            "a=candidate:1 1 UDP 1 10.77.0.1 5000 typ srflx raddr 0.0.0.0 rport 0",
        )
        .unwrap(); // well formed
        assert_eq!(f.transport, "UDP");
        assert_eq!(f.address, "10.77.0.1");
        assert_eq!(f.raddr, Some("0.0.0.0"));
        assert_eq!(candidate_fields("candidate:1 1 udp 1 10.77.0.1"), None);
        assert_eq!(candidate_fields("a=ice-ufrag:x"), None);
    }

    #[test]
    fn only_udp_on_the_address_is_allowed() {
        assert!(candidate_allowed(
            "candidate:1 1 udp 1 10.77.0.1 5000 typ host",
            ip()
        ));
        assert!(candidate_allowed(
            " a=candidate:1 1 udp 1 10.77.0.1 5000 typ host",
            ip()
        ));
        assert!(!candidate_allowed(
            "candidate:1 1 tcp 1 10.77.0.1 5000 typ host",
            ip()
        ));
        assert!(!candidate_allowed(
            "candidate:1 1 udp 1 192.168.1.2 5000 typ host",
            ip()
        ));
        assert!(!candidate_allowed("", ip()));
    }

    #[test]
    fn filter_keeps_other_lines_and_reports_drops() {
        let sdp = "v=0\r\na=candidate:1 1 udp 1 10.77.0.1 5000 typ host\r\n\
                   a=candidate:2 1 udp 1 8.8.8.8 5000 typ host\r\na=ice-ufrag:abc\r\n";
        let mut dropped = Vec::new();
        let out = filter_candidates(sdp, ip(), |l| dropped.push(l.to_owned()));
        assert_eq!(
            out,
            "v=0\r\na=candidate:1 1 udp 1 10.77.0.1 5000 typ host\r\na=ice-ufrag:abc\r\n"
        );
        assert_eq!(dropped, ["a=candidate:2 1 udp 1 8.8.8.8 5000 typ host"]);
        assert_eq!(ice_ufrag(&out).as_deref(), Some("abc"));
    }
}
