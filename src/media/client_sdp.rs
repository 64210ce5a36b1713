//! Checks on SDP that clients send, before it reaches rheomesh.
//!
//! Every check reads the SDP with webrtc-rs's own parser (the `sdp` crate),
//! so what is checked is exactly what the media stack will see: a text
//! check can be fooled by `a=  rid:` or a stray `\r`, the parser cannot.
//!
//! rheomesh fault: a subscribe answer (or subscribe-prepare offer) with
//! `a=rid` lines makes webrtc-rs echo them into the server's next offer,
//! with an `a=simulcast` line that Mozilla's SDP parser (used by rheomesh to
//! adjust every subscribe offer) rejects when rids of both directions meet
//! (`recv hsend h`) or ids carry `;`, `,`, `=` or `~`. rheomesh then panics
//! ("could not adjust sdp") inside the PeerConnection's operation task, and
//! that subscribe connection is stuck. The server only ever sends
//! single-encoding tracks, so subscribers have no use for rid or simulcast:
//! they are refused with `bad-request`.

use std::io::Cursor;

use webrtc::sdp::SessionDescription;

/// The SDP as the media stack parses it; `None` when it does not parse (the
/// media stack then refuses it with its own error, before using any of it).
pub fn parse(sdp: &str) -> Option<SessionDescription> {
    SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).ok()
}

/// Media-section attributes `(key, value)` of a parsed description.
fn media_attributes(d: &SessionDescription) -> impl Iterator<Item = (usize, &str, &str)> {
    d.media_descriptions.iter().enumerate().flat_map(|(i, m)| {
        m.attributes
            .iter()
            .map(move |a| (i, a.key.as_str(), a.value.as_deref().unwrap_or("")))
    })
}

/// A subscribe answer or subscribe-prepare offer: no `a=rid`/`a=simulcast`.
pub fn check_subscriber(sdp: &str) -> Result<(), String> {
    let Some(d) = parse(sdp) else { return Ok(()) };
    if let Some((i, key, _)) =
        media_attributes(&d).find(|(_, k, _)| matches!(*k, "rid" | "simulcast"))
    {
        return Err(format!(
            "media section {i} carries a={key}: the server sends single-encoding tracks, \
             so subscribe SDP must not have rid or simulcast attributes"
        ));
    }
    Ok(())
}

/// Whether a RID is safe to echo: RFC 8851's rid-id, at most 16 characters.
fn valid_rid(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A publish offer: simulcast only as a sender, with well-formed,
/// distinct RIDs that the `a=simulcast` line names.
pub fn check_publisher(sdp: &str) -> Result<(), String> {
    let Some(d) = parse(sdp) else { return Ok(()) };
    for (i, m) in d.media_descriptions.iter().enumerate() {
        let mut rids: Vec<&str> = Vec::new();
        let mut simulcast = 0;
        for a in &m.attributes {
            let value = a.value.as_deref().unwrap_or("");
            match a.key.as_str() {
                "rid" => {
                    let mut parts = value.split(' ');
                    let id = parts.next().unwrap_or("");
                    let dir = parts.next().unwrap_or("");
                    if !valid_rid(id) {
                        return Err(format!(
                            "media section {i}: rid `{id}` must be 1-16 letters, digits, - or _"
                        ));
                    }
                    if dir != "send" {
                        return Err(format!(
                            "media section {i}: rid `{id}` is `{dir}`; a publish offer sends, so every rid is `send`"
                        ));
                    }
                    if rids.contains(&id) {
                        return Err(format!("media section {i}: rid `{id}` appears twice"));
                    }
                    rids.push(id);
                }
                "simulcast" => {
                    simulcast += 1;
                    let Some(list) = value.strip_prefix("send ") else {
                        return Err(format!(
                            "media section {i}: a=simulcast must be `send <rids>` in a publish offer"
                        ));
                    };
                    for id in list.split([';', ',']) {
                        let id = id.strip_prefix('~').unwrap_or(id);
                        if !rids.contains(&id)
                            && !m.attributes.iter().any(|a| {
                                a.key == "rid"
                                    && a.value.as_deref().and_then(|v| v.split(' ').next())
                                        == Some(id)
                            })
                        {
                            return Err(format!(
                                "media section {i}: a=simulcast names rid `{id}`, which no a=rid defines"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        if simulcast > 1 {
            return Err(format!(
                "media section {i} has {simulcast} a=simulcast lines"
            ));
        }
        if simulcast == 1 && rids.is_empty() {
            return Err(format!("media section {i}: a=simulcast without a=rid"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_video_lines(lines: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=rtpmap:96 VP8/90000\r\n{lines}"
        )
    }

    #[test]
    fn subscriber_sdp_without_rids_passes() {
        for f in [
            include_str!("testdata/offer-chromium-default.sdp"),
            include_str!("testdata/offer-firefox-default.sdp"),
            include_str!("testdata/offer-aiortc.sdp"),
        ] {
            assert_eq!(check_subscriber(f), Ok(()));
        }
    }

    #[test]
    fn subscriber_rids_refused_however_written() {
        for lines in [
            "a=rid:h recv\r\na=rid:h send\r\na=simulcast:recv h\r\n",
            "a=rid:h send\r\n",
            "a=  rid:h send\r\n",
            "\ra=simulcast:recv a;b\r\n",
            "a=simulcast:send x\r\n",
        ] {
            let sdp = with_video_lines(lines);
            let e = check_subscriber(&sdp).expect_err(lines);
            assert!(e.contains("single-encoding"), "{e}");
        }
    }

    #[test]
    fn publisher_simulcast_checked() {
        let ok = with_video_lines(
            "a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;~f\r\n",
        );
        assert_eq!(check_publisher(&ok), Ok(()));
        for lines in [
            "a=rid:h send\r\na=rid:h send\r\n",
            "a=rid:h recv\r\n",
            "a=rid:a;b send\r\n",
            "a=rid:h send\r\na=simulcast:send h\r\na=simulcast:send h\r\n",
            "a=rid:h send\r\na=simulcast:recv h\r\n",
            "a=rid:h send\r\na=simulcast:send h;x\r\n",
            "a=simulcast:send h\r\n",
        ] {
            assert!(
                check_publisher(&with_video_lines(lines)).is_err(),
                "{lines}"
            );
        }
        assert_eq!(
            check_publisher(include_str!("testdata/offer-firefox-max-bundle.sdp")),
            Ok(())
        );
    }
}

/// The properties the fuzz target (`fuzz/fuzz_targets/client_sdp.rs`) and
/// the mutation test check on any input, as one function so both run the
/// same code: nothing panics, and what the checks let through is, as the
/// media stack parses it, free of what they exist to keep out. Returns
/// whether the media stack parses the input (for the stable harness in
/// tests/fuzz, which counts how many inputs get that far).
#[doc(hidden)]
pub fn fuzz_invariants(data: &[u8]) -> bool {
    use super::candidates::{CandidateGate, CandidateRules};
    let sdp = String::from_utf8_lossy(data);
    let parsed = parse(&sdp);
    if check_subscriber(&sdp).is_ok() {
        if let Some(d) = &parsed {
            assert!(
                media_attributes(d).all(|(_, k, _)| k != "rid" && k != "simulcast"),
                "a subscriber SDP with rid/simulcast passed the check: {sdp:?}"
            );
        }
    }
    let _ = check_publisher(&sdp);
    let _ = super::sdp::offered_tracks(&sdp);
    // Built once: the rules read the host's interfaces, a system call that
    // would otherwise be a good part of every input's cost.
    static RULES: std::sync::OnceLock<std::sync::Arc<CandidateRules>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let policy = crate::config::CandidatePolicy {
            max_per_pc: 4,
            ..Default::default()
        };
        CandidateRules::new(policy, &["10.77.0.1".parse().expect("literal")], false)
    });
    let mut gate = CandidateGate::new(std::sync::Arc::clone(rules));
    if let Ok(out) = gate.filter_sdp(&sdp) {
        // Unchanged (no candidate dropped), it reads the same: not parsed again.
        let reparsed;
        let filtered = if out == *sdp {
            parsed.as_ref()
        } else {
            reparsed = parse(&out);
            reparsed.as_ref()
        };
        if let Some(d) = filtered {
            let mut seen = std::collections::HashSet::new();
            let session = d.attributes.iter();
            let media = d
                .media_descriptions
                .iter()
                .flat_map(|m| m.attributes.iter());
            for a in session.chain(media).filter(|a| a.key == "candidate") {
                let value = a.value.as_deref().unwrap_or("");
                let fields: Vec<&str> = value.split_whitespace().collect();
                if fields.len() >= 8 {
                    assert!(
                        rules.refuse_address(fields[4]).is_none(),
                        "candidate {value:?} survived the filter"
                    );
                    seen.insert(fields.join(" "));
                }
            }
            assert!(
                seen.len() <= 4,
                "{} candidates survived the cap of 4",
                seen.len()
            );
        }
    }
    parsed.is_some()
}

#[cfg(test)]
mod mutation {
    use super::fuzz_invariants;

    /// The fuzz properties over deterministic mutations of real SDP (a few
    /// thousand inputs in every test run; `scripts/fuzz.sh` runs the
    /// coverage-guided target for longer).
    #[test]
    fn mutated_sdp_keeps_the_invariants() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: &[&str] = &[
            "\r\n",
            "\n",
            "\r",
            " ",
            "\t",
            "a=",
            ":",
            ";",
            ",",
            "~",
            "a=rid:h send\r\n",
            "a=rid:h recv\r\n",
            "a=simulcast:recv h\r\n",
            "a=  rid:x send\r\n",
            "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
            "a=candidate: 1 1 udp 1 10.77.0.1 9 typ host\r\n",
            "\ra=candidate:2 1 udp 1 0.0.0.0 9 typ host\r\n",
            "a=candidate:3 1 udp 1 x.local 9 typ host\r\n",
            "a=candidate:4 1 udp 1 10.1.1.4 9 typ host\r\n",
            "a=candidate:5 1 udp 1 10.1.1.5 9 typ host\r\n",
            "a=candidate:6 1 udp 1 10.1.1.6 9 typ host\r\n",
            "a=candidate:7 1 udp 1 10.1.1.7 9 typ host\r\n",
            "a=candidate:8 1 udp 1 10.1.1.8 9 typ host\r\n",
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "a=msid:s t\r\n",
            "a=mid:9\r\n",
            "\u{a0}",
            "é",
        ];
        let fixtures = [
            include_str!("testdata/offer-chromium-default.sdp"),
            include_str!("testdata/offer-firefox-default.sdp"),
            include_str!("testdata/offer-firefox-max-bundle.sdp"),
            include_str!("testdata/offer-gstreamer.sdp"),
            include_str!("testdata/offer-aiortc.sdp"),
        ];
        for fixture in fixtures {
            for _ in 0..600 {
                let mut s = fixture.to_owned();
                for _ in 0..(1 + next() % 6) {
                    let mut at = (next() as usize) % (s.len() + 1);
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    match next() % 3 {
                        0 => s.insert_str(at, pieces[(next() as usize) % pieces.len()]),
                        1 => {
                            let mut end = (at + 1 + (next() as usize) % 40).min(s.len());
                            while !s.is_char_boundary(end) {
                                end -= 1;
                            }
                            s.replace_range(at..end, "");
                        }
                        _ => {
                            let line = "a=candidate:9 1 udp 1 127.0.0.1 9 typ host\r\n";
                            s.insert_str(at, line);
                        }
                    }
                }
                fuzz_invariants(s.as_bytes());
            }
        }
    }
}
