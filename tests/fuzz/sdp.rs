//! Client SDP: publish offers, subscribe answers and subscribe-prepare
//! offers through every check the server makes before the media library
//! sees them (`rheo_sfu::media::client_sdp::fuzz_invariants`, shared with
//! the nightly libFuzzer target in fuzz/), and the rewrites of SDP the
//! server sends.

use std::fmt;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use rheo_sfu::media::{client_sdp, sdp};

use crate::{corpus, driver, mutate};

/// Lines that the checks look at, written as clients write them and as
/// they should not.
const LINES: &[&str] = &[
    "a=rid:h send\r\n",
    "a=rid:h recv\r\n",
    "a=rid:q send\r\na=rid:f send\r\na=simulcast:send q;~f\r\n",
    "a=rid:a;b send\r\n",
    "a=rid:0123456789abcdefg send\r\n",
    "a=simulcast:recv h\r\n",
    "a=simulcast:send h;l\r\n",
    "a=simulcast:send x,~y\r\n",
    "a=  rid:x send\r\n",
    "\ra=simulcast:recv a;b\r\n",
    "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
    "a=candidate: 1 1 udp 1 10.77.0.1 9 typ host\r\n",
    "a=candidate:candidate: 1 udp 7 127.0.0.1 9 typ host\r\n",
    "\ra=candidate:2 1 udp 1 0.0.0.0 9 typ host\r\n",
    "a=candidate:3 1 udp 1 x.local 9 typ host\r\n",
    "a=candidate:4 1 udp 1 10.1.1.4 9 typ host\r\n",
    "a=candidate:5 1 udp 1 10.1.1.5 9 typ host\r\n",
    "a=candidate:6 1 udp 1 10.1.1.6 9 typ host\r\n",
    "a=candidate:7 1 udp 1 10.1.1.7 9 typ host\r\n",
    "a=candidate:8 1 udp 1 ::ffff:127.0.0.1 9 typ host\r\n",
    "a=candidate:9\t1\tudp\t1\t169.254.0.1\t9\ttyp\thost\r\n",
    "a=candidate:10 1 udp 1 fe80::1 9 typ host\r\n",
    "a=candidate:11 1 tcp 1 10.1.1.11 9 typ host tcptype passive\r\n",
    "a=candidate:12 1 udp 1 203.0.113.7 9 typ srflx raddr 127.0.0.1 rport 9\r\n",
    "a=end-of-candidates\r\n",
    "a=ice-ufrag:other\r\n",
    "a=ice-pwd:0123456789abcdef0123456789\r\n",
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    "m=video 9 UDP/TLS/RTP/SAVPF\r\n",
    "a=bundle-only\r\n",
    "a=sendonly\r\n",
    "a=recvonly\r\n",
    "a=sendrecv\r\n",
    "a=inactive\r\n",
    "a=msid:s t\r\n",
    "a=msid:s\r\n",
    "a=msid:webrtc-rs probator\r\n",
    "a=ssrc:1 msid:s t2\r\n",
    "a=ssrc:1 cname:c\r\n",
    "a=mid:9\r\n",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n",
    "a=extmap:5/sendonly urn:ietf:params:rtp-hdrext:toffset\r\n",
    "c=IN IP4 0.0.0.0\r\n",
    "c=IN IP6 ::\r\n",
    "b=AS:1000000000000000000000\r\n",
    "a=ice-lite\r\n",
    "v=0\r\n",
    "\r\n",
    "a=\r\n",
    "a=:\r\n",
    "x\r\n",
];

const WORDS: &[&str] = &[
    " ",
    ":",
    ";",
    ",",
    "~",
    "=",
    "\r",
    "\t",
    "\u{a0}",
    "a=",
    "rid",
    "simulcast",
    "send",
    "recv",
    "candidate",
    "candidate:",
    "127.0.0.1",
    "::1",
    "0",
    "65536",
    "msid:",
    "é",
];

/// An SDP, or bytes that are not quite UTF-8.
enum Input {
    Text(String),
    Bytes(Vec<u8>),
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Text(s) => write!(f, "Text({s:?})"),
            Input::Bytes(b) => write!(f, "Bytes(b\"{}\")", b.escape_ascii()),
        }
    }
}

impl Input {
    fn bytes(&self) -> &[u8] {
        match self {
            Input::Text(s) => s.as_bytes(),
            Input::Bytes(b) => b,
        }
    }
}

/// The lines of the real offers: each one's session part, and every
/// m-section.
struct Parts {
    sessions: Vec<Vec<&'static str>>,
    sections: Vec<Vec<&'static str>>,
    donors: Vec<&'static str>,
}

fn parts() -> &'static Parts {
    static P: OnceLock<Parts> = OnceLock::new();
    P.get_or_init(|| {
        let mut sessions = Vec::new();
        let mut sections = Vec::new();
        for sdp in corpus::SDPS.iter().chain([&corpus::SMALL_SDP]) {
            let mut current: Vec<&'static str> = Vec::new();
            let mut in_session = true;
            for line in sdp.split_inclusive('\n') {
                if line.starts_with("m=") {
                    if in_session {
                        sessions.push(std::mem::take(&mut current));
                        in_session = false;
                    } else {
                        sections.push(std::mem::take(&mut current));
                    }
                }
                current.push(line);
            }
            sections.push(current);
        }
        let mut donors: Vec<&'static str> = corpus::SDPS.to_vec();
        donors.push(corpus::SMALL_SDP);
        Parts {
            sessions,
            sections,
            donors,
        }
    })
}

/// A short offer cut from real ones: a session part, then one to three
/// m-sections, each its m= line and a window of its lines. Parsing costs
/// what the text is long, so short offers test more lines per second.
fn cut(u: &mut Unstructured<'_>) -> Result<String> {
    let p = parts();
    let mut out: String = u.choose(&p.sessions)?.concat();
    for _ in 0..u.int_in_range(1..=2)? {
        let section = u.choose(&p.sections)?;
        out.push_str(section[0]);
        let from = u.int_in_range(1..=section.len())?;
        let n = u.int_in_range(0..=6)?;
        for line in section.iter().skip(from).take(n) {
            out.push_str(line);
        }
    }
    Ok(out)
}

fn make(u: &mut Unstructured<'_>) -> Result<Input> {
    let p = parts();
    let mut text = match u.int_in_range(0..=99)? {
        0..=59 => cut(u)?,
        60..=94 => corpus::SMALL_SDP.to_owned(),
        95..=97 => (*u.choose(corpus::SDPS)?).to_owned(),
        _ => return Ok(Input::Text(mutate::any_string(u, WORDS)?)),
    };
    // Attribute lines where they belong (in an m-section), so that most
    // inputs still parse and reach the checks behind the parser; then, for
    // half of the inputs, edits that break the structure as well.
    for _ in 0..u.int_in_range(0..=3)? {
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let first_media = lines
            .iter()
            .position(|l| l.starts_with("m="))
            .unwrap_or(lines.len());
        let at = u.int_in_range(first_media.saturating_add(1).min(lines.len())..=lines.len())?;
        lines.insert(at, u.choose(LINES)?);
        text = lines.concat();
    }
    if u.ratio(1, 2)? {
        mutate::lines(u, &mut text, 3, LINES, &p.donors, WORDS)?;
    }
    if u.ratio(1, 10)? {
        let mut bytes = text.into_bytes();
        mutate::bytes(u, &mut bytes, &[b"\r\n", b"\xc3", b"\xff", b"\0"], &[])?;
        return Ok(Input::Bytes(bytes));
    }
    Ok(Input::Text(text))
}

/// No panic; what the client checks let through holds no rid/simulcast
/// (subscribe side) and no refused or surplus candidate
/// (`fuzz_invariants`); the rewrites of server offers never panic, and
/// those documented as idempotent are.
fn check(input: &Input) -> &'static str {
    let bytes = input.bytes();
    let parses = client_sdp::fuzz_invariants(bytes);
    let text = String::from_utf8_lossy(bytes);
    // The rewrites take the server's own offers, not a client's: no need
    // to spend every input on them.
    if bytes.len() % 8 == 0 {
        let once = sdp::silence_probe(&text);
        assert_eq!(sdp::silence_probe(&once), once, "silence_probe twice");
        let once = sdp::only_mid_extension(&text);
        assert_eq!(
            sdp::only_mid_extension(&once),
            once,
            "only_mid_extension twice"
        );
        let once = sdp::declare_ice_lite(&text);
        assert_eq!(sdp::declare_ice_lite(&once), once, "declare_ice_lite twice");
        let _ = sdp::retire_stale_tracks(&text, |t| t.len() % 2 == 0);
    }
    match (parses, sdp::offered_tracks(&text)) {
        (false, _) => "unparsable",
        (true, Ok(tracks)) if !tracks.is_empty() => "tracks",
        (true, Ok(_)) => "no-tracks",
        (true, Err(_)) => "tracks-refused",
    }
}

#[test]
fn client_sdp() {
    let tally = driver::run("client_sdp", make, check);
    tally.expect_share("tracks", 0.05);
    tally.expect_share("tracks-refused", 0.01);
    tally.expect_share("unparsable", 0.05);
}

/// Inputs that failed once, kept as they were found.
#[test]
fn client_sdp_regressions() {
    // A candidate the gate read with its `candidate:` foundation dropped,
    // as if trickled, and so let through; webrtc-rs reads it whole, with
    // 127.0.0.1 as its address (see the candidate target's regressions).
    let sdp = corpus::SMALL_SDP.replace(
        "a=mid:1\r\n",
        "a=mid:1\r\na=candidate:candidate: 1 udp 7 127.0.0.1 9 typ host\r\n",
    );
    assert_eq!(check(&Input::Text(sdp)), "tracks");
}
