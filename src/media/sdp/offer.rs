//! Reading a client's publish offer: which tracks it sends.

use signaling::{TrackInfo, TrackKind};

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

struct Section {
    kind: Option<TrackKind>,
    /// Port 0: rejected, unless `bundle_only` (RFC 8843 section 6: a
    /// bundle-only section is offered with port 0 and lives in the bundle).
    port_zero: bool,
    bundle_only: bool,
    direction: Option<&'static str>,
    track_id: Option<String>,
}

pub(super) fn direction(line: &str) -> Option<&'static str> {
    match line {
        "a=sendonly" => Some("sendonly"),
        "a=recvonly" => Some("recvonly"),
        "a=sendrecv" => Some("sendrecv"),
        "a=inactive" => Some("inactive"),
        _ => None,
    }
}
