//! Rewrites of the media library's subscribe offers before they reach the
//! client (see the subscriber actor's docs for why each is needed).

use super::offer::direction;

/// The msid stream id of rheomesh's bandwidth probe (track id `probator`).
const PROBE_STREAM: &str = "webrtc-rs";

/// The lines of an SDP (each with its line ending), each with the index of
/// the m-section it belongs to (`None` for the session part).
fn lines_by_section(sdp: &str) -> Vec<(Option<usize>, &str)> {
    let mut section: Option<usize> = None;
    sdp.split_inclusive('\n')
        .map(|line| {
            if line.starts_with("m=") {
                section = Some(section.map_or(0, |n| n + 1));
            }
            (section, line)
        })
        .collect()
}

/// The `a=msid` (stream id, track id) of every m-section, in order.
fn section_msids(lines: &[(Option<usize>, &str)]) -> Vec<Option<(String, String)>> {
    let mut msids: Vec<Option<(String, String)>> = Vec::new();
    for (section, line) in lines {
        let Some(n) = *section else { continue };
        if msids.len() <= n {
            msids.resize(n + 1, None);
        }
        if let Some(rest) = line.trim_end_matches(['\r', '\n']).strip_prefix("a=msid:") {
            let mut parts = rest.split_ascii_whitespace();
            if let (Some(stream), Some(track)) = (parts.next(), parts.next()) {
                msids[n] = Some((stream.to_owned(), track.to_owned()));
            }
        }
    }
    msids
}

/// A line that names a section's msid: `a=msid:` or an `a=ssrc:` msid,
/// mslabel or label attribute.
fn is_msid_line(bare: &str) -> bool {
    bare.starts_with("a=msid:")
        || bare.strip_prefix("a=ssrc:").is_some_and(|rest| {
            rest.split_once(' ').is_some_and(|(_, attr)| {
                attr.starts_with("msid:")
                    || attr.starts_with("mslabel:")
                    || attr.starts_with("label:")
            })
        })
}

/// Rewrites the lines of the flagged m-sections: `edit` returns the line to
/// keep (without line ending) or `None` to drop it.
fn rewrite_sections(
    lines: &[(Option<usize>, &str)],
    flagged: &[bool],
    edit: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    for (section, line) in lines {
        if !section.is_some_and(|n| flagged.get(n).copied().unwrap_or(false)) {
            out.push_str(line);
            continue;
        }
        let bare = line.trim_end_matches(['\r', '\n']);
        if let Some(kept) = edit(bare) {
            out.push_str(&kept);
            out.push_str(&line[bare.len()..]);
        }
    }
    out
}

/// Removes the msid of every m-section of a server offer whose track is no
/// longer forwarded (`is_live` says no) or is carried again by a later
/// m-section. rheomesh never removes a transceiver, so after an unsubscribe
/// and a resubscribe the offer names one track in two m-sections, and
/// browsers refuse that ("Duplicate a=msid lines detected"). Without its
/// msid the stale m-section is an anonymous receiver that gets no media; the
/// media library's own state is untouched (only the copy sent to the client
/// changes, and msid is not negotiated). The probator (stream `webrtc-rs`)
/// is left alone.
pub fn retire_stale_tracks(sdp: &str, is_live: impl Fn(&str) -> bool) -> String {
    let lines = lines_by_section(sdp);
    let sections = section_msids(&lines);
    let stale: Vec<bool> = sections
        .iter()
        .enumerate()
        .map(|(n, msid)| match msid {
            Some((stream, _)) if stream == PROBE_STREAM => false,
            Some((_, track)) => {
                !is_live(track)
                    || sections[n + 1..]
                        .iter()
                        .any(|m| m.as_ref().is_some_and(|(_, t)| t == track))
            }
            None => false,
        })
        .collect();
    if !stale.contains(&true) {
        return sdp.to_owned();
    }
    rewrite_sections(&lines, &stale, |bare| {
        (!is_msid_line(bare)).then(|| bare.to_owned())
    })
}

/// Turns the probator section of a server offer (rheomesh's bandwidth
/// probe, msid `webrtc-rs probator`) into an `inactive` section without
/// msid. The probe sends about 30 s of Opus frames of zeros, which a client
/// that does not know to ignore it plays as noise. Offered `inactive`, a
/// client answers `inactive` and fires no track event; webrtc-rs then pauses
/// the probe's sender, so nothing is sent at all. Only the copy sent to the
/// client changes; it must be applied to every offer (a section offered
/// `sendonly` again would resume the sender).
pub fn silence_probe(sdp: &str) -> String {
    let lines = lines_by_section(sdp);
    let probe: Vec<bool> = section_msids(&lines)
        .iter()
        .map(|m| m.as_ref().is_some_and(|(stream, _)| stream == PROBE_STREAM))
        .collect();
    if !probe.contains(&true) {
        return sdp.to_owned();
    }
    rewrite_sections(&lines, &probe, |bare| {
        if direction(bare).is_some() {
            Some("a=inactive".to_owned())
        } else if is_msid_line(bare) {
            None
        } else {
            Some(bare.to_owned())
        }
    })
}

/// The RTP header extension a subscriber may negotiate: the MID, which
/// webrtc-rs writes into every forwarded packet at the id this subscriber
/// negotiated.
const MID_EXTENSION: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// Removes every `a=extmap` of a server subscribe offer except the MID's.
///
/// Why: forwarded packets keep their publisher's header extensions under the
/// publisher's ids (Chromium, Firefox, Safari, aiortc and GStreamer number
/// them differently), while the offer would declare rheomesh's own table, so
/// a subscriber would read, say, Firefox's MID (id 3) as transport-cc. With
/// only the MID negotiated, every other id in a forwarded packet is one the
/// subscriber never negotiated and ignores (RFC 8285 section 4.2), whatever
/// the publisher's table. Nothing is lost: transport-cc and abs-send-time
/// carry the publisher's sequence numbers and send times, which no
/// subscriber can use, and rheomesh drops the subscribers' TWCC and REMB
/// feedback anyway (it forwards only PLI). Publishers still negotiate
/// transport-cc and get the server's feedback.
pub fn only_mid_extension(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| {
            let bare = line.trim_end_matches(['\r', '\n']);
            match bare.strip_prefix("a=extmap:") {
                // a=extmap:<id>[/<direction>] <uri> [<attributes>]
                Some(rest) => rest.split_ascii_whitespace().nth(1) == Some(MID_EXTENSION),
                None => true,
            }
        })
        .collect()
}

/// Adds `a=ice-lite` to the session part of an SDP the server sends on a
/// subscribe transport whose first offer came from the client.
///
/// Why: the server's ICE agent is then controlled for good (webrtc-rs keeps
/// the role it got at the first negotiation, also when it restarts ICE).
/// Chromium, receiving an ICE-restart offer, takes the controlled role
/// (RFC 8445: the restarting side controls); with both sides controlled no
/// pair is ever nominated and the PeerConnection fails. A full agent facing
/// a lite one always controls, so Chromium keeps the controlling role.
/// The server behaves as a lite agent needs to from a browser's view: it
/// answers checks and accepts the browser's nomination.
pub fn declare_ice_lite(sdp: &str) -> String {
    if sdp.lines().any(|l| l.trim_end() == "a=ice-lite") {
        return sdp.to_owned();
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    match sdp.find("\nm=") {
        Some(i) => format!("{}a=ice-lite{eol}{}", &sdp[..i + 1], &sdp[i + 1..]),
        None => sdp.to_owned(),
    }
}

/// The ICE credentials (ufrag, pwd) of a description: the first
/// `a=ice-ufrag` and `a=ice-pwd`, session or media level (a bundled
/// description uses one pair throughout). `None` if either is missing.
pub fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let value = |attr: &str| {
        sdp.lines()
            .find_map(|l| l.trim().strip_prefix(attr))
            .map(|v| v.trim().to_owned())
    };
    Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}
