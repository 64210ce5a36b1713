//! What the tests check in an SDP: that it names no address but the test
//! network's (the candidate parser is the testkit's, the one the peers'
//! filters use).

use std::net::IpAddr;

use sfu_testkit::sdp::candidate_fields;

/// Returns every address found in `a=candidate` lines (connection address and
/// `raddr`, if any) and `c=` lines of an SDP, in order of appearance.
pub fn sdp_candidate_addresses(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        let line = line.trim();
        if line.starts_with("a=candidate:") {
            if let Some(f) = candidate_fields(line) {
                out.push(f.address.to_owned());
                if let Some(r) = f.raddr {
                    out.push(r.to_owned());
                }
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            // c=IN IP4 10.0.0.1[/ttl]
            if let Some(addr) = c.split_whitespace().nth(2) {
                out.push(addr.split('/').next().unwrap_or(addr).to_owned());
            }
        }
    }
    out
}

/// Number of `a=candidate` lines in an SDP.
pub fn sdp_candidate_count(sdp: &str) -> usize {
    sdp.lines()
        .filter(|l| l.trim().starts_with("a=candidate:"))
        .count()
}

/// Panics with a clear message if any candidate address in the SDP differs
/// from `ip` (`a=candidate` connection address and raddr, and `c=` lines;
/// `0.0.0.0` / `::` in `c=` lines and raddr is ignored), or if an
/// `a=candidate` line is not UDP.
pub fn assert_sdp_only_ip(sdp: &str, ip: IpAddr) {
    let mut problems = Vec::new();
    for line in sdp.lines() {
        let line = line.trim();
        if line.starts_with("a=candidate:") {
            match candidate_fields(line) {
                Some(f) => {
                    let (transport, addr) = (f.transport, f.address);
                    if !transport.eq_ignore_ascii_case("udp") {
                        problems.push(format!("non-UDP candidate: {line}"));
                    }
                    if addr.parse::<IpAddr>().ok() != Some(ip) {
                        problems.push(format!("candidate address {addr} != {ip}: {line}"));
                    }
                    if let Some(r) = f.raddr {
                        let unspecified = r
                            .parse::<IpAddr>()
                            .map(|a| a.is_unspecified())
                            .unwrap_or(false);
                        if !unspecified && r.parse::<IpAddr>().ok() != Some(ip) {
                            problems.push(format!("candidate raddr {r} != {ip}: {line}"));
                        }
                    }
                }
                None => problems.push(format!("unparsable candidate line: {line}")),
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            if let Some(addr) = c.split_whitespace().nth(2) {
                let addr = addr.split('/').next().unwrap_or(addr);
                match addr.parse::<IpAddr>() {
                    Ok(a) if a.is_unspecified() || a == ip => {}
                    _ => problems.push(format!("c= address {addr} != {ip}: {line}")),
                }
            }
        }
    }
    if !problems.is_empty() {
        panic!(
            "SDP carries addresses other than {ip} (or non-UDP candidates):\n  {}\n--- SDP ---\n{sdp}",
            problems.join("\n  ")
        );
    }
}
