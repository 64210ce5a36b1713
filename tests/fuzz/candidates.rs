//! ICE candidates: the rules that decide which client candidates the
//! server probes (`CandidateGate`), for trickled candidates and for
//! `a=candidate` lines in SDP, checked against how webrtc-rs itself reads
//! each candidate (`unmarshal_candidate`, on the same path it takes in the
//! server: trickled ones lose a leading `candidate:`, SDP values do not).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use arbitrary::{Result, Unstructured};
use rheo_sfu::config::{CandidatePolicy, IpNet};
use rheo_sfu::media::candidates::{self, CandidateGate, CandidateRules};
use rheo_sfu::media::{client_sdp, sdp};
use signaling::CandidateInit;
use webrtc::ice::candidate::candidate_base::unmarshal_candidate;
use webrtc::ice::candidate::Candidate as _;

use crate::{corpus, driver, mutate};

/// Candidates per PeerConnection in the rules under test.
const CAP: usize = 4;

/// Addresses each rule is about, written every way an address parses.
const ADDRESSES: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.1",
    "::1",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "0.0.0.0",
    "::",
    "224.0.0.251",
    "ff02::1",
    "255.255.255.255",
    "169.254.1.1",
    "fe80::1",
    "FE80::1",
    "fe80::1%eth0",
    "fe9f::1",
    "10.77.0.1",
    "198.51.100.7",
    "2001:db8::1",
    "192.0.2.1",
    "10.1.2.3",
    "203.0.113.9",
    "2001:4860::8888",
    "abc.local",
    "ABC.LOCAL",
    ".local",
    "localhost",
    "example.com",
    "0x7f000001",
    "[::1]",
    "127.0.0.1:9",
    "",
];

const WORDS: &[&str] = &[
    "candidate:",
    "a=",
    "udp",
    "UDP",
    "tcp",
    "typ",
    "host",
    "srflx",
    "prflx",
    "relay",
    "raddr",
    "rport",
    "tcptype",
    "passive",
    "generation",
    "0",
    "1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "-1",
];

const SEPARATORS: &[&str] = &[
    " ", "  ", "\t", "\u{a0}", "\u{3000}", "\u{85}", "\u{b}", "\u{c}", "\r", "\n",
];

#[derive(Debug)]
enum Step {
    Trickle(CandidateInit),
    Ufrag(&'static str),
    Sdp(String),
}

#[derive(Debug)]
struct Input {
    allow_mdns: bool,
    steps: Vec<Step>,
}

fn rules(allow_mdns: bool) -> Arc<CandidateRules> {
    static R: OnceLock<[Arc<CandidateRules>; 2]> = OnceLock::new();
    let r = R.get_or_init(|| {
        let net = |s: &str| s.parse::<IpNet>().expect("network literal");
        let policy = CandidatePolicy {
            max_per_pc: CAP,
            allow: vec![net("127.0.0.2/32")],
            deny: vec![net("198.51.100.0/24"), net("2001:db8::/32")],
        };
        let own = ["10.77.0.1".parse().expect("literal")];
        [false, true].map(|mdns| CandidateRules::new(policy.clone(), &own, mdns))
    });
    Arc::clone(&r[usize::from(allow_mdns)])
}

/// One candidate line: a real one with its fields edited (the address
/// most of all), its separators changed, prefixes added or dropped.
fn line(u: &mut Unstructured<'_>) -> Result<String> {
    let base = *u.choose(corpus::CANDIDATES)?;
    let mut fields: Vec<String> = base.split(' ').map(str::to_owned).collect();
    let address_at = if fields[0].starts_with("a=") || fields[0].ends_with(':') {
        5
    } else {
        4
    };
    for _ in 0..u.int_in_range(0..=3)? {
        let at = u.choose_index(fields.len())?;
        match u.int_in_range(0..=7)? {
            0..=2 => fields[address_at] = (*u.choose(ADDRESSES)?).to_owned(),
            3 => fields[at] = (*u.choose(WORDS)?).to_owned(),
            4 if fields.len() > 1 => {
                fields.remove(at);
            }
            5 => fields.insert(at, (*u.choose(WORDS)?).to_owned()),
            6 => mutate::text(u, &mut fields[at], WORDS)?,
            _ => fields.truncate(at + 1),
        }
        if fields.len() <= address_at {
            break;
        }
    }
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(if u.ratio(1, 8)? {
                u.choose(SEPARATORS)?
            } else {
                " "
            });
        }
        out.push_str(f);
    }
    match u.int_in_range(0..=9)? {
        0 => out = format!("candidate:{out}"),
        1 => out = format!("candidate: {out}"),
        2 => {
            out = out
                .trim_start_matches("a=")
                .trim_start_matches("candidate:")
                .to_owned()
        }
        3 => out = format!("a={out}"),
        4 => out = format!("{}{out}{}", u.choose(SEPARATORS)?, u.choose(SEPARATORS)?),
        _ => {}
    }
    Ok(out)
}

fn make(u: &mut Unstructured<'_>) -> Result<Input> {
    let mut steps = Vec::new();
    for _ in 0..u.int_in_range(1..=6)? {
        steps.push(match u.int_in_range(0..=9)? {
            0..=6 => Step::Trickle(CandidateInit {
                candidate: line(u)?,
                sdp_mid: u
                    .ratio(1, 2)?
                    .then(|| (*u.choose(&["0", "1", ""]).unwrap_or(&"0")).to_owned()),
                sdp_m_line_index: u.arbitrary()?,
                username_fragment: u.ratio(1, 4)?.then(|| "abcd".to_owned()),
            }),
            7 => Step::Ufrag(u.choose(&["abcd", "efgh"])?),
            _ => {
                let mut s = String::from("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
                if u.ratio(3, 4)? {
                    s.push_str(&format!(
                        "a=ice-ufrag:{}\r\na=ice-pwd:0123456789abcdef012345\r\n",
                        u.choose(&["abcd", "efgh"])?
                    ));
                }
                if u.ratio(1, 8)? {
                    s.push_str(&format!("a=candidate:{}\r\n", line(u)?));
                }
                s.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n");
                for _ in 0..u.int_in_range(1..=4)? {
                    let prefix = *u.choose(&[
                        "a=candidate:",
                        "a=candidate:",
                        "a=candidate:",
                        "a=  candidate:",
                        "\ra=candidate:",
                        "a=candidate: ",
                        "a=candidate:candidate:",
                        "a=Candidate:",
                    ])?;
                    s.push_str(&format!("{prefix}{}\r\n", line(u)?));
                }
                if u.ratio(1, 4)? {
                    mutate::lines(
                        u,
                        &mut s,
                        2,
                        &[
                            "a=end-of-candidates\r\n",
                            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                        ],
                        &[],
                        WORDS,
                    )?;
                }
                Step::Sdp(s)
            }
        });
    }
    Ok(Input {
        allow_mdns: u.ratio(1, 4)?,
        steps,
    })
}

/// What the server will probe, given `gate` admitted it: the address
/// webrtc-rs reads, which the rules must allow. `probed` collects them per
/// ICE generation and stays within the cap.
fn probes(rules: &CandidateRules, value: &str, probed: &mut HashSet<String>, how: &str) {
    let Ok(c) = unmarshal_candidate(value) else {
        return;
    };
    let address = c.address();
    assert!(
        rules.refuse_address(&address).is_none(),
        "{how} candidate {value:?}: webrtc-rs probes {address}, which the rules refuse ({:?})",
        rules.refuse_address(&address)
    );
    probed.insert(format!("{} {} {}", address, c.port(), c.network_type()));
    assert!(
        probed.len() <= CAP,
        "{} addresses probed, cap {CAP}: {probed:?}",
        probed.len()
    );
}

/// No panic. Every candidate the gate lets through, read the way
/// webrtc-rs reads it on that path, has an address the rules allow, and a
/// PeerConnection never probes more than the cap per ICE generation. The
/// candidate conversions to and from the media library are lossless.
fn check(input: &Input) -> &'static str {
    let rules = rules(input.allow_mdns);
    let mut gate = CandidateGate::new(Arc::clone(&rules));
    // The client's ICE username as the gate last saw it: a new one starts
    // a new generation (and a new count).
    let mut current: Option<String> = None;
    let mut probed = HashSet::new();
    let mut new_generation = |ufrag: Option<&str>, probed: &mut HashSet<String>| {
        if let Some(u) = ufrag {
            if current.as_deref() != Some(u) {
                current = Some(u.to_owned());
                probed.clear();
            }
        }
    };
    let mut admitted = 0;
    let mut refused = 0;
    for step in &input.steps {
        match step {
            Step::Trickle(c) => {
                let rtc = candidates::to_rtc_candidate(c);
                assert_eq!(&candidates::from_rtc_candidate(rtc.clone()), c);
                if gate.admit(c).is_ok() {
                    admitted += 1;
                    // RTCPeerConnection::add_ice_candidate.
                    let value = rtc
                        .candidate
                        .strip_prefix("candidate:")
                        .unwrap_or(&rtc.candidate);
                    if !value.is_empty() {
                        probes(&rules, value, &mut probed, "trickled");
                    }
                } else {
                    refused += 1;
                }
            }
            Step::Ufrag(u) => {
                gate.remote_ufrag(Some(u));
                new_generation(Some(u), &mut probed);
            }
            Step::Sdp(s) => {
                let credentials = sdp::ice_credentials(s);
                new_generation(credentials.as_ref().map(|(u, _)| u.as_str()), &mut probed);
                let Ok(out) = gate.filter_sdp(s) else {
                    refused += 1;
                    continue;
                };
                admitted += 1;
                // set_remote_description reads the media-level candidates.
                if let Some(d) = client_sdp::parse(&out) {
                    for a in d.media_descriptions.iter().flat_map(|m| &m.attributes) {
                        if a.key == "candidate" {
                            probes(&rules, a.value.as_deref().unwrap_or(""), &mut probed, "SDP");
                        }
                    }
                }
            }
        }
    }
    match (admitted, refused) {
        (0, _) => "all-refused",
        (_, 0) => "all-admitted",
        _ => "mixed",
    }
}

#[test]
fn candidate() {
    let tally = driver::run("candidate", make, check);
    for outcome in ["all-refused", "all-admitted", "mixed"] {
        tally.expect_share(outcome, 0.05);
    }
}

/// Inputs that failed once, kept as they were found.
#[test]
fn candidate_regressions() {
    // webrtc-rs reads an SDP candidate value as it is: in
    // `a=candidate:candidate: 1 udp 7 127.0.0.1 9 typ host` the foundation
    // is `candidate:` and the address 127.0.0.1, which the gate read as a
    // trickled line (prefix dropped, seven fields, "webrtc-rs refuses it")
    // and let through: the server probed loopback.
    for address in ["127.0.0.1", ".local", "10.77.0.1"] {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\n\
             a=ice-pwd:0123456789abcdef012345\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
             c=IN IP4 0.0.0.0\r\na=mid:0\r\na=candidate:candidate: 1 udp 7 {address} 9 typ host\r\n"
        );
        let input = Input {
            allow_mdns: false,
            steps: vec![Step::Sdp(sdp)],
        };
        check(&input);
    }
}
