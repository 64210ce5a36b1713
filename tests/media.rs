//! Media end to end: the real server, real webrtc-rs peers, real RTP.
//! Runs inside the network namespace of scripts/test.sh (10.77.0.1).

mod common;

use std::time::Duration;

use common::driver::{Driver, Options};
use common::peer::assert_sdp_only_ip;
use common::{require_test_network, test_ip, TestServer};

const MEDIA_WAIT: Duration = Duration::from_secs(20);

/// Every subscriber receives RTP on both tracks of one publisher; payload
/// counters are continuous (nothing lost or reordered by the SFU) and every
/// SDP the server sent carries only the address under test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_one_publisher_three_subscribers() {
    require_test_network();
    let server = TestServer::start().await;
    let room = "fanout";
    let publisher = Driver::join(&server, "pub", room, Options::default()).await;
    let mut subs = Vec::new();
    for (i, prepare) in [true, true, false].into_iter().enumerate() {
        let d = Driver::join(
            &server,
            &format!("sub{i}"),
            room,
            Options {
                publish: false,
                prepare,
                ..Options::default()
            },
        )
        .await;
        subs.push(d);
    }
    for s in &subs {
        s.wait_new_publisher("pub", 2).await;
    }
    for s in &subs {
        s.subscribe("pub");
    }
    for s in &subs {
        for track in [&publisher.video_track, &publisher.audio_track] {
            assert!(
                s.subscriber.wait_for_packets(track, 100, MEDIA_WAIT).await,
                "{} got no media on {track}: {:?} errors {:?}",
                s.id,
                s.subscriber.stats(),
                s.errors()
            );
        }
    }
    // Let media flow a little longer, then check continuity.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for s in &subs {
        let stats = s.subscriber.stats();
        for track in [&publisher.video_track, &publisher.audio_track] {
            let t = &stats[track.as_str()];
            assert!(
                t.packets >= 150,
                "{}: {track} only {} packets",
                s.id,
                t.packets
            );
            assert_eq!(t.counter_backwards, 0, "{}: {track} reordered: {t:?}", s.id);
            assert_eq!(t.counter_gaps, 0, "{}: {track} lost packets: {t:?}", s.id);
            assert_eq!(t.seq_gaps, 0, "{}: {track} sequence gaps: {t:?}", s.id);
        }
        assert!(s.errors().is_empty(), "{}: {:?}", s.id, s.errors());
        for e in s.events_of("subscribe-offer") {
            assert_sdp_only_ip(e.raw["offer"].as_str().unwrap(), test_ip());
        }
        assert!(s.subscriber.dropped_remote_candidates().is_empty());
    }
    let answer = publisher.events_of("publish-answer");
    assert_eq!(answer.len(), 1);
    for e in publisher.events_of("publish-ice-candidate") {
        let c = e.raw["candidate"]["candidate"].as_str().unwrap();
        assert!(c.contains(" 10.77.0.1 "), "foreign candidate {c}");
    }
    publisher.close().await;
    for s in subs {
        s.close().await;
    }
    server.stop().await;
}
