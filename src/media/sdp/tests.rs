use signaling::{TrackInfo, TrackKind};

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
        "chromium-default" => include_str!("../testdata/offer-chromium-default.sdp"),
        "chromium-mixed-directions" => {
            include_str!("../testdata/offer-chromium-mixed-directions.sdp")
        }
        "chromium-added-later" => include_str!("../testdata/offer-chromium-added-later.sdp"),
        "firefox-default" => include_str!("../testdata/offer-firefox-default.sdp"),
        "firefox-max-bundle" => include_str!("../testdata/offer-firefox-max-bundle.sdp"),
        "firefox-mixed-directions" => {
            include_str!("../testdata/offer-firefox-mixed-directions.sdp")
        }
        "gstreamer" => include_str!("../testdata/offer-gstreamer.sdp"),
        "aiortc" => include_str!("../testdata/offer-aiortc.sdp"),
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
