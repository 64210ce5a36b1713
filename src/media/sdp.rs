//! Small, dependency-free reading of client SDP: which tracks an offer sends,
//! and candidate conversions. Only what the SFU needs to police an offer
//! before it reaches the media library.

use signaling::{CandidateInit, TrackInfo, TrackKind};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;

/// Tracks an offer sends (m-sections with `sendonly`/`sendrecv` and an msid,
/// with a port or `a=bundle-only`).
/// Errors when an m-section sends without an msid, or a track id repeats.
pub fn offered_tracks(sdp: &str) -> Result<Vec<TrackInfo>, String> {
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut section: Option<Section> = None;
    let mut session_direction_sends = true;
    let finish =
        |s: Section, tracks: &mut Vec<TrackInfo>, session_sends: bool| -> Result<(), String> {
            let sends = s
                .direction
                .map(|d| d == "sendonly" || d == "sendrecv")
                .unwrap_or(session_sends);
            let Some(kind) = s.kind else { return Ok(()) };
            if !sends || (s.port_zero && !s.bundle_only) {
                return Ok(());
            }
            let Some(track_id) = s.track_id else {
                return Err("a sending m-section has no a=msid track id".to_owned());
            };
            if tracks.iter().any(|t| t.track_id == track_id) {
                return Err(format!("track id {track_id} appears twice in the offer"));
            }
            tracks.push(TrackInfo { track_id, kind });
            Ok(())
        };
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            if let Some(s) = section.take() {
                finish(s, &mut tracks, session_direction_sends)?;
            }
            let mut parts = rest.split(' ');
            let kind = match parts.next() {
                Some("audio") => Some(TrackKind::Audio),
                Some("video") => Some(TrackKind::Video),
                _ => None,
            };
            let port_zero = parts.next() == Some("0");
            section = Some(Section {
                kind,
                port_zero,
                bundle_only: false,
                direction: None,
                track_id: None,
            });
        } else if line == "a=bundle-only" {
            if let Some(s) = section.as_mut() {
                s.bundle_only = true;
            }
        } else if let Some(dir) = direction(line) {
            match section.as_mut() {
                Some(s) => s.direction = Some(dir),
                None => session_direction_sends = dir == "sendonly" || dir == "sendrecv",
            }
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            if let Some(s) = section.as_mut() {
                // a=msid:<stream id> <track id>
                let mut parts = rest.split_ascii_whitespace();
                let _stream = parts.next();
                if let Some(track) = parts.next() {
                    s.track_id = Some(track.to_owned());
                }
            }
        } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
            // Plan-B style `a=ssrc:<ssrc> msid:<stream> <track>`.
            if let Some(s) = section.as_mut() {
                if s.track_id.is_none() {
                    if let Some(msid) = rest.split_once(" msid:").map(|(_, m)| m) {
                        if let Some(track) = msid.split_ascii_whitespace().nth(1) {
                            s.track_id = Some(track.to_owned());
                        }
                    }
                }
            }
        }
    }
    if let Some(s) = section.take() {
        finish(s, &mut tracks, session_direction_sends)?;
    }
    Ok(tracks)
}

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

struct Section {
    kind: Option<TrackKind>,
    /// Port 0: rejected, unless `bundle_only` (RFC 8843 section 6: a
    /// bundle-only section is offered with port 0 and lives in the bundle).
    port_zero: bool,
    bundle_only: bool,
    direction: Option<&'static str>,
    track_id: Option<String>,
}

fn direction(line: &str) -> Option<&'static str> {
    match line {
        "a=sendonly" => Some("sendonly"),
        "a=recvonly" => Some("recvonly"),
        "a=sendrecv" => Some("sendrecv"),
        "a=inactive" => Some("inactive"),
        _ => None,
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

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:s1 a1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendrecv\r\na=msid:s1 v1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\na=msid:s1 v2\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";

    const SERVER_OFFER: &str = "v=0\r\ns=-\r\na=group:BUNDLE 0 1 2 3\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=ssrc:1 cname:c\r\na=ssrc:1 msid:s v\r\n\
        a=ssrc:1 mslabel:s\r\na=ssrc:1 label:v\r\na=msid:s v\r\na=sendrecv\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=msid:webrtc-rs probator\r\na=sendrecv\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=ssrc:2 msid:s a\r\na=msid:s a\r\na=sendrecv\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=ssrc:3 cname:c\r\na=ssrc:3 msid:s v\r\na=msid:s v\r\na=sendrecv\r\n";

    #[test]
    fn ice_credentials_from_session_or_media_level() {
        let media = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\n\
            a=ice-pwd:0123456789abcdef0123\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\n";
        assert_eq!(
            ice_credentials(media),
            Some(("abcd".to_owned(), "0123456789abcdef0123".to_owned()))
        );
        let session = "v=0\na=ice-ufrag:u1\na=ice-pwd:p1\nm=video 9 UDP/TLS/RTP/SAVPF 96\n";
        assert_eq!(
            ice_credentials(session),
            Some(("u1".to_owned(), "p1".to_owned()))
        );
        assert_eq!(ice_credentials(OFFER), None);
    }

    fn msids(sdp: &str) -> Vec<(usize, String)> {
        let mut n = 0;
        let mut out = Vec::new();
        for l in sdp.split("\r\n") {
            if l.starts_with("m=") {
                n += 1;
            }
            if l.starts_with("a=msid:")
                || l.contains(" msid:")
                || l.contains(" mslabel:")
                || l.contains(" label:")
            {
                out.push((n, l.to_owned()));
            }
        }
        out
    }

    #[test]
    fn retires_the_older_copy_of_a_resubscribed_track() {
        let out = retire_stale_tracks(SERVER_OFFER, |_| true);
        let m = msids(&out);
        assert!(
            m.iter().all(|(n, _)| *n != 1),
            "first video section keeps msid: {m:?}"
        );
        assert_eq!(m.iter().filter(|(n, _)| *n == 4).count(), 2);
        assert!(m
            .iter()
            .any(|(n, l)| *n == 2 && l == "a=msid:webrtc-rs probator"));
        // Everything else is untouched, CRLF kept.
        assert!(out.contains("a=ssrc:1 cname:c\r\n"));
        assert!(out.contains("a=mid:0\r\na=ssrc:1 cname:c\r\na=sendrecv\r\nm=audio"));
        assert_eq!(out.lines().count(), SERVER_OFFER.lines().count() - 4);
    }

    #[test]
    fn retires_tracks_that_are_not_forwarded_any_more() {
        let out = retire_stale_tracks(SERVER_OFFER, |t| t != "a");
        assert!(msids(&out).iter().all(|(n, _)| *n != 3));
        assert!(out.contains("a=ssrc:3 msid:s v"));
        // The probator is never retired.
        let out = retire_stale_tracks(SERVER_OFFER, |_| false);
        assert_eq!(
            msids(&out).into_iter().map(|(_, l)| l).collect::<Vec<_>>(),
            vec!["a=msid:webrtc-rs probator".to_owned()]
        );
    }

    #[test]
    fn ice_lite_goes_into_the_session_part_once() {
        let out = declare_ice_lite(SERVER_OFFER);
        let first_m = out.find("m=").unwrap();
        assert_eq!(out.matches("a=ice-lite").count(), 1);
        assert!(out[..first_m].ends_with("a=ice-lite\r\n"));
        assert_eq!(declare_ice_lite(&out), out);
        assert_eq!(
            declare_ice_lite("v=0\nm=audio 9 X 0\n"),
            "v=0\na=ice-lite\nm=audio 9 X 0\n"
        );
        assert_eq!(declare_ice_lite("no media"), "no media");
    }

    #[test]
    fn leaves_a_clean_offer_alone() {
        let clean = "v=0\r\nm=video 9 X 96\r\na=msid:s v\r\nm=audio 9 X 111\r\na=msid:s a\r\n";
        assert_eq!(retire_stale_tracks(clean, |_| true), clean);
        assert_eq!(retire_stale_tracks("", |_| true), "");
        assert_eq!(
            retire_stale_tracks("garbage\nm=\na=msid:", |_| false),
            "garbage\nm=\na=msid:"
        );
    }

    #[test]
    fn reads_sending_tracks() {
        let t = offered_tracks(OFFER).unwrap();
        assert_eq!(
            t,
            vec![
                TrackInfo {
                    track_id: "a1".into(),
                    kind: TrackKind::Audio
                },
                TrackInfo {
                    track_id: "v1".into(),
                    kind: TrackKind::Video
                },
            ]
        );
    }

    #[test]
    fn duplicate_track_rejected() {
        let sdp = OFFER.replace("msid:s1 v1", "msid:s1 a1");
        assert!(offered_tracks(&sdp).is_err());
    }

    #[test]
    fn missing_msid_rejected() {
        let sdp = OFFER.replace("a=msid:s1 v1\r\n", "");
        assert!(offered_tracks(&sdp).is_err());
    }

    /// Real offers, captured from each stack (Chromium 156, Firefox ESR 153,
    /// GStreamer 1.22 webrtcbin, aiortc 1.16) with a camera and a microphone.
    fn real(name: &str) -> &'static str {
        match name {
            "chromium-default" => include_str!("testdata/offer-chromium-default.sdp"),
            "chromium-mixed-directions" => {
                include_str!("testdata/offer-chromium-mixed-directions.sdp")
            }
            "chromium-added-later" => include_str!("testdata/offer-chromium-added-later.sdp"),
            "firefox-default" => include_str!("testdata/offer-firefox-default.sdp"),
            "firefox-max-bundle" => include_str!("testdata/offer-firefox-max-bundle.sdp"),
            "firefox-mixed-directions" => {
                include_str!("testdata/offer-firefox-mixed-directions.sdp")
            }
            "gstreamer" => include_str!("testdata/offer-gstreamer.sdp"),
            "aiortc" => include_str!("testdata/offer-aiortc.sdp"),
            other => panic!("no fixture {other}"),
        }
    }

    fn kinds(sdp: &str) -> Vec<(String, TrackKind)> {
        offered_tracks(sdp)
            .expect("a valid offer")
            .into_iter()
            .map(|t| (t.track_id, t.kind))
            .collect()
    }

    fn audio_video(sdp: &str) -> (String, String) {
        let k = kinds(sdp);
        assert_eq!(k.len(), 2, "{k:?}");
        let audio = k.iter().find(|(_, kind)| *kind == TrackKind::Audio);
        let video = k.iter().find(|(_, kind)| *kind == TrackKind::Video);
        (
            audio.expect("an audio track").0.clone(),
            video.expect("a video track").0.clone(),
        )
    }

    #[test]
    fn every_real_camera_offer_publishes_audio_and_video() {
        for name in [
            "chromium-default",
            "chromium-added-later",
            "firefox-default",
            "firefox-max-bundle",
            "gstreamer",
            "aiortc",
        ] {
            let (a, v) = audio_video(real(name));
            assert_ne!(a, v, "{name}");
        }
    }

    #[test]
    fn bundle_only_sections_are_published() {
        // Firefox with bundlePolicy max-bundle: the video section has port 0
        // and a=bundle-only (RFC 8843); it is live, inside the bundle.
        let ff = real("firefox-max-bundle");
        assert!(ff.contains("m=video 0 ") && ff.contains("a=bundle-only"));
        let (_, v) = audio_video(ff);
        assert_eq!(v, "{e57d7426-26c3-49da-b2e0-64f907b827dd}");
        // GStreamer webrtcbin's default (max-bundle): the audio section is
        // bundle-only, and its msid is only in a=ssrc lines.
        let gst = real("gstreamer");
        assert!(gst.contains("m=audio 0 ") && gst.contains("a=bundle-only"));
        assert_eq!(
            audio_video(gst),
            (
                "webrtctransceiver1".to_owned(),
                "webrtctransceiver0".to_owned()
            )
        );
    }

    #[test]
    fn rejected_port_zero_section_is_not_published() {
        // The same Firefox section without a=bundle-only is a rejected one.
        let rejected = real("firefox-max-bundle").replace("a=bundle-only\r\n", "");
        let k = kinds(&rejected);
        assert_eq!(k.len(), 1, "{k:?}");
        assert_eq!(k[0].1, TrackKind::Audio);
    }

    #[test]
    fn recvonly_and_inactive_sections_mixed_in_are_skipped() {
        // recvonly video, sendonly audio, inactive audio, sendrecv video, in
        // that order; Firefox makes the last two bundle-only.
        for name in ["chromium-mixed-directions", "firefox-mixed-directions"] {
            let k = kinds(real(name));
            assert_eq!(
                k.iter().map(|(_, kind)| *kind).collect::<Vec<_>>(),
                vec![TrackKind::Audio, TrackKind::Video],
                "{name}: {k:?}"
            );
        }
    }

    #[test]
    fn probe_section_goes_inactive_without_msid() {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=msid:s1 t1\r\n\
            a=ssrc:1 cname:x\r\na=ssrc:1 msid:s1 t1\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendrecv\r\na=msid:webrtc-rs probator\r\n\
            a=ssrc:2 cname:webrtc-rs\r\na=ssrc:2 msid:webrtc-rs probator\r\n";
        let out = silence_probe(offer);
        let probe = &out[out.find("a=mid:1").unwrap()..];
        assert!(probe.contains("a=inactive\r\n"), "{out}");
        assert!(
            !probe.contains("sendrecv") && !probe.contains("msid"),
            "{out}"
        );
        assert!(probe.contains("a=ssrc:2 cname:webrtc-rs\r\n"));
        // The track section is untouched, and so is an offer without probe.
        assert_eq!(
            &out[..out.find("a=mid:1").unwrap()],
            &offer[..offer.find("a=mid:1").unwrap()]
        );
        let plain = real("chromium-default");
        assert_eq!(silence_probe(plain), plain);
        // Idempotent (applied to every offer).
        assert_eq!(silence_probe(&out), out);
    }

    #[test]
    fn subscribe_offers_keep_only_the_mid_extension() {
        let offer = "v=0\r\ns=-\r\na=extmap-allow-mixed\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
            a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
            a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
            a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
            a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
            a=sendrecv\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
            a=extmap:4/sendonly urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
            a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
            a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n";
        let out = only_mid_extension(offer);
        let extmaps: Vec<&str> = out.lines().filter(|l| l.starts_with("a=extmap:")).collect();
        assert_eq!(
            extmaps,
            vec![
                "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
                "a=extmap:4/sendonly urn:ietf:params:rtp-hdrext:sdes:mid"
            ]
        );
        assert!(out.contains("a=extmap-allow-mixed\r\n") && out.contains("a=mid:1\r\n"));
        assert_eq!(only_mid_extension(&out), out);
    }
}
