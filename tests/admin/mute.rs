//! Server-side mute: a muted track is withdrawn from the room (the others
//! get `new-publisher` without it) and no longer forwarded; unmuting
//! announces and forwards it again; a reconnect does not undo it. Real
//! webrtc-rs peers, real RTP.

use std::time::{Duration, Instant};

use crate::common::driver::{Driver, Options};
use crate::common::{media_slot, require_test_network, TestServer, T};
use crate::support::admin;

fn packets(d: &Driver, track: &str) -> u64 {
    d.subscriber.track_stats(track).map_or(0, |s| s.packets)
}

/// `new-publisher` messages `d` received announcing `tracks` tracks.
fn announcements(d: &Driver, tracks: usize) -> usize {
    d.events_of("new-publisher")
        .iter()
        .filter(|e| e.raw["tracks"].as_array().map(Vec::len) == Some(tracks))
        .count()
}

/// Waits for one more `new-publisher` with `tracks` tracks than `before`.
async fn another_announcement(d: &Driver, tracks: usize, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while announcements(d, tracks) == before {
        assert!(
            Instant::now() < deadline,
            "no new-publisher with {tracks} tracks: {:?}",
            d.events_of("new-publisher")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_track_is_withdrawn_and_not_forwarded() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let p = Driver::join(&server, "pub", "stage", Options::default()).await;
    let s = Driver::join(&server, "sub", "stage", Options::subscriber()).await;
    s.wait_new_publisher("pub", 2).await;
    s.subscribe("pub");
    for t in [&p.audio_track, &p.video_track] {
        assert!(
            s.subscriber.wait_for_packets(t, 20, T).await,
            "{t} forwarded"
        );
    }

    let path = "/admin/v1/rooms/stage/participants/pub/mute";
    let (status, v) = admin(&server, "POST", path, Some(r#"{"trackIds":["nope"]}"#)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("track-not-found")),
        "{v}"
    );
    let one_before = announcements(&s, 1);
    let body = format!(r#"{{"trackIds":["{}"]}}"#, p.video_track);
    let (status, v) = admin(&server, "POST", path, Some(&body)).await;
    assert_eq!(status, 200, "{v}");
    let muted: Vec<(&str, bool)> = v["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| (t["trackId"].as_str().unwrap_or(""), t["muted"] == true))
        .collect();
    assert!(muted.contains(&(p.video_track.as_str(), true)), "{v}");
    assert!(muted.contains(&(p.audio_track.as_str(), false)), "{v}");

    // The room is told: pub has one track now.
    another_announcement(&s, 1, one_before).await;
    let (_, room) = admin(&server, "GET", "/admin/v1/rooms/stage", None).await;
    assert_eq!(
        room["tracks"], 2,
        "muted tracks still count as published: {room}"
    );
    // Video stops while audio goes on: once another 50 audio packets
    // (a second of Opus) arrived after the announcement, video has not
    // grown beyond what was in flight.
    let video_then = packets(&s, &p.video_track);
    let audio_then = packets(&s, &p.audio_track);
    assert!(
        s.subscriber
            .wait_for_packets(&p.audio_track, audio_then + 50, T)
            .await,
        "audio keeps flowing"
    );
    let video_now = packets(&s, &p.video_track);
    assert!(
        video_now <= video_then + 10,
        "video still forwarded after mute: {video_then} -> {video_now}"
    );

    // Reconnecting does not get around the mute: the publisher's new
    // connection replaces the old one, and only its audio is announced.
    let one_before = announcements(&s, 1);
    let p2 = Driver::join(&server, "pub", "stage", Options::default()).await;
    another_announcement(&s, 1, one_before).await;
    let deadline = Instant::now() + T;
    loop {
        let (_, room) = admin(&server, "GET", "/admin/v1/rooms/stage", None).await;
        let tracks = room["participants"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["participantId"] == "pub"))
            .map(|p| p["tracks"].clone())
            .unwrap_or_default();
        let video_muted = tracks.as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["trackId"] == p2.video_track.as_str() && t["muted"] == true)
        });
        if video_muted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new connection's video is not muted: {room}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.close().await;
    // sub heard `publisher-left` for the old connection; it subscribes to
    // the new one (its audio).
    s.subscribe("pub");

    // Unmuting (every track) announces it again, and it flows again.
    let two_before = announcements(&s, 2);
    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/stage/participants/pub/unmute",
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .all(|t| t["muted"] == false),
        "{v}"
    );
    another_announcement(&s, 2, two_before).await;
    assert!(
        s.subscriber
            .wait_for_packets(&p2.video_track, video_now + 30, Duration::from_secs(15))
            .await,
        "video forwarded again after unmute"
    );
    s.close().await;
    p2.close().await;
    server.stop().await;
}
