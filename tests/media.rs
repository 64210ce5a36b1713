//! Media end to end: the real server, real webrtc-rs peers, real RTP.
//! Runs inside the network namespace of scripts/test.sh (10.77.0.1).

mod common;

use std::time::Duration;

use common::driver::{Driver, Options};
use common::peer::sdp::assert_sdp_only_ip;
use common::{media_slot, require_test_network, test_ip, TestServer};
use signaling::ClientMessage;

const MEDIA_WAIT: Duration = Duration::from_secs(20);

/// Every subscriber receives RTP on both tracks of one publisher; payload
/// counters are continuous (nothing lost or reordered by the SFU), the
/// server never restarts ICE (prepared or not), and every SDP the server
/// sent carries only the address under test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_one_publisher_three_subscribers() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let room = "fanout";
    let publisher = Driver::join(&server, "pub", room, Options::default()).await;
    let mut subs = Vec::new();
    let prepared = [true, true, false];
    for (i, prepare) in prepared.into_iter().enumerate() {
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
        s.assert_no_server_ice_restart();
        assert!(
            !stats.values().any(|t| t.probator),
            "{}: the probator reached the client: {stats:?}",
            s.id
        );
        for e in s.events_of("subscribe-offer") {
            let offer = e.raw["offer"].as_str().unwrap();
            assert_sdp_only_ip(offer, test_ip());
            // Subscribers negotiate no header extension but the MID.
            for l in offer.lines().filter(|l| l.starts_with("a=extmap:")) {
                assert!(l.ends_with("urn:ietf:params:rtp-hdrext:sdes:mid"), "{l}");
            }
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

fn opts(publish: bool, prepare: bool) -> Options {
    Options {
        publish,
        prepare,
        ..Options::default()
    }
}

/// Publishers p1 and p2 (audio and video each) and subscriber s, all with
/// prepared subscribe PeerConnections, once s has seen both publishers.
async fn two_publishers_and_a_subscriber(
    server: &TestServer,
    room: &str,
) -> (Driver, Driver, Driver) {
    let p1 = Driver::join(server, "p1", room, opts(true, true)).await;
    let p2 = Driver::join(server, "p2", room, opts(true, true)).await;
    let s = Driver::join(server, "s", room, opts(false, true)).await;
    s.wait_new_publisher("p1", 2).await;
    s.wait_new_publisher("p2", 2).await;
    (p1, p2, s)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Six participants, everyone publishes and subscribes to everyone
/// (30 subscriptions, 60 forwarded tracks), five rooms in a row. Nobody
/// prepares a subscribe PeerConnection: the server offers first to all six
/// (the seed-001 flow, the hardest case for the media library). No
/// subscription may get stuck, and the server never restarts ICE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_person_rooms_five_rounds() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let room = format!("six-{round}");
        let mut ds = Vec::new();
        for i in 0..6 {
            ds.push(Driver::join(&server, &format!("p{i}"), &room, opts(true, false)).await);
        }
        for d in &ds {
            for other in &ds {
                if other.id != d.id {
                    d.wait_new_publisher(&other.id, 2).await;
                }
            }
        }
        let mut sent_at = Vec::new();
        for d in &ds {
            for other in &ds {
                if other.id != d.id {
                    sent_at.push((d.id.clone(), other.id.clone(), std::time::Instant::now()));
                    d.subscribe(&other.id);
                }
            }
        }
        for d in &ds {
            for other in &ds {
                if other.id == d.id {
                    continue;
                }
                for track in [&other.video_track, &other.audio_track] {
                    assert!(
                        d.subscriber
                            .wait_for_packets(track, 20, Duration::from_secs(40))
                            .await,
                        "round {round}: {} stuck on {track}: stats {:?} errors {:?}; tracks seen: {:?}; subscribe PC {}; {} subscribe-offers, last lists {}",
                        d.id,
                        d.subscriber.stats().get(track.as_str()),
                        d.errors(),
                        d.subscriber.stats().keys().collect::<Vec<_>>(),
                        d.subscriber.connection_state(),
                        d.events_of("subscribe-offer").len(),
                        d.events_of("subscribe-offer").last().map_or(String::new(), |e| e.raw["tracks"].to_string())
                    );
                }
            }
            assert!(
                d.errors().is_empty(),
                "round {round}: {}: {:?}",
                d.id,
                d.errors()
            );
            d.assert_no_server_ice_restart();
        }
        for (sub, publ, at) in &sent_at {
            let d = ds.iter().find(|d| &d.id == sub).unwrap();
            let first = [format!("{publ}-video"), format!("{publ}-audio")]
                .iter()
                .filter_map(|t| d.subscriber.track_stats(t).and_then(|s| s.first_packet_at))
                .min()
                .unwrap();
            latencies.push(first.saturating_duration_since(*at));
        }
        for d in ds {
            d.close().await;
        }
    }
    let med = median(latencies.clone());
    let max = latencies.iter().max().copied().unwrap();
    println!(
        "subscribe-request -> first RTP over {} subscriptions: median {med:?}, max {max:?}",
        latencies.len()
    );
    server.stop().await;
}

/// One subscriber subscribes, unsubscribes and resubscribes 20 times on one
/// transport; then one of two publishers leaves mid-stream: the subscriber
/// gets publisher-left and no offer, and the other publisher's media keeps
/// flowing. The server's ICE credentials never change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_twenty_times_then_publisher_leaves() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let (p1, p2, s) = two_publishers_and_a_subscriber(&server, "churn").await;
    let video = p1.video_track.clone();
    for cycle in 0..20 {
        let before = s
            .subscriber
            .track_stats(&video)
            .map(|t| t.packets)
            .unwrap_or(0);
        s.subscribe("p1");
        assert!(
            s.subscriber
                .wait_for_packets(&video, before + 10, Duration::from_secs(20))
                .await,
            "cycle {cycle}: no media after resubscribe; errors {:?}",
            s.errors()
        );
        s.unsubscribe("p1");
        // Forwarding stops: the count settles.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let a = s.subscriber.track_stats(&video).unwrap().packets;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = s.subscriber.track_stats(&video).unwrap().packets;
        assert!(
            b - a <= 2,
            "cycle {cycle}: media still flowing after unsubscribe ({a} -> {b})"
        );
    }
    assert!(s.errors().is_empty(), "{:?}", s.errors());

    s.subscribe("p1");
    s.subscribe("p2");
    for t in [&p1.video_track, &p2.video_track, &p2.audio_track] {
        let before = s.subscriber.track_stats(t).map(|t| t.packets).unwrap_or(0);
        assert!(
            s.subscriber
                .wait_for_packets(t, before + 10, Duration::from_secs(20))
                .await,
            "no media on {t}"
        );
    }
    let offers_before = s.events_of("subscribe-offer").len();
    p1.close().await;
    s.wait_event("publisher-left", Duration::from_secs(10), |v| {
        v["type"] == "publisher-left" && v["publisherId"] == "p1"
    })
    .await;
    let before = s.subscriber.track_stats(&p2.video_track).unwrap().packets;
    assert!(
        s.subscriber
            .wait_for_packets(&p2.video_track, before + 50, Duration::from_secs(20))
            .await,
        "p2's media stopped after p1 left"
    );
    // A publisher leaving renegotiates nothing (rheomesh cannot remove a
    // transceiver; publisher-left is what the client acts on).
    assert_eq!(s.events_of("subscribe-offer").len(), offers_before);
    assert!(s.errors().is_empty(), "{:?}", s.errors());
    s.assert_no_server_ice_restart();
    p2.close().await;
    s.close().await;
    server.stop().await;
}

/// A client may answer a renegotiation offer with new ICE credentials: it
/// restarted ICE on its side. webrtc-rs does so by itself when an offer
/// arrives before its transport has taken the previous answer's
/// credentials, which a loaded client hits; here the client restarts
/// explicitly. The server must take the new credentials without changing
/// its own: applied as a `pranswer` (the renegotiation workaround), such an
/// answer restarts the server's ICE agent, whose new credentials the client
/// never receives, and the subscription loses all media for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_with_new_ice_credentials_keeps_media() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let (p1, p2, s) = two_publishers_and_a_subscriber(&server, "ice-change").await;
    s.subscribe("p1");
    assert!(
        s.subscriber
            .wait_for_packets(&p1.video_track, 10, MEDIA_WAIT)
            .await,
        "no media from p1: {:?}",
        s.errors()
    );
    s.subscriber
        .peer_connection()
        .restart_ice()
        .await
        .expect("client-side ICE restart");
    s.subscribe("p2");
    s.wait_event("p2's second track offered", MEDIA_WAIT, |v| {
        v["type"] == "subscribe-offer"
            && v["publisherId"] == "p2"
            && v["tracks"].as_array().is_some_and(|t| t.len() == 2)
    })
    .await;
    // Long enough for webrtc-ice to give up on checks with credentials the
    // other side no longer has (8 binding requests, 200 ms apart).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for t in [&p2.video_track, &p2.audio_track, &p1.video_track] {
        let before = s.subscriber.track_stats(t).map(|t| t.packets).unwrap_or(0);
        assert!(
            s.subscriber
                .wait_for_packets(t, before + 20, Duration::from_secs(5))
                .await,
            "no media on {t} after the client changed its ICE credentials (subscribe PeerConnection {}); errors {:?}",
            s.subscriber.connection_state(),
            s.errors()
        );
    }
    assert!(s.errors().is_empty(), "{:?}", s.errors());
    p1.close().await;
    p2.close().await;
    s.close().await;
    server.stop().await;
}

/// The seed-001 client, verbatim shapes: `auth` message, offer as an SDP
/// string, candidates as bare strings, numeric publisherId, no prepare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_message_shapes() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let room = "seed";
    let seed = || Options {
        publish: true,
        prepare: false,
        bare_candidates: true,
        auth_message: true,
        tamper_first_answer: None,
        peer: None,
        server_ice_servers: false,
    };
    let p = Driver::join(&server, "42", room, seed()).await;
    let s = Driver::join(
        &server,
        "7",
        room,
        Options {
            publish: false,
            ..seed()
        },
    )
    .await;
    s.wait_new_publisher("42", 2).await;
    s.send_json(
        serde_json::json!({"type": "subscribe-request", "roomName": room, "publisherId": 42}),
    );
    for t in [&p.video_track, &p.audio_track] {
        assert!(
            s.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
            "no media on {t}: {:?}",
            s.errors()
        );
    }
    let offer = s.events_of("subscribe-offer");
    assert_eq!(offer[0].raw["publisherId"], "42");
    // One offer per track, none with new server ICE credentials.
    assert_eq!(offer.len(), 2, "{offer:?}");
    s.assert_no_server_ice_restart();
    assert!(p
        .events_of("publish-ice-candidate")
        .iter()
        .all(|e| e.raw["candidate"].is_object()));
    assert!(
        s.errors().is_empty() && p.errors().is_empty(),
        "{:?} {:?}",
        s.errors(),
        p.errors()
    );
    p.close().await;
    s.close().await;
    server.stop().await;
}

/// A client that sends `subscribe-request` again while the first one's
/// tracks are still queued (the seed-001 snippet does this on every
/// `new-publisher`) must not get a track twice: two m-sections with the same
/// msid make Chromium refuse the offer ("Duplicate a=msid lines").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_subscribe_requests_never_duplicate_a_track() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let room = "dup";
    let p = Driver::join(&server, "pub", room, Options::default()).await;
    let s = Driver::join(&server, "sub", room, Options::subscriber()).await;
    s.wait_new_publisher("pub", 2).await;
    for _ in 0..3 {
        s.subscribe("pub");
    }
    for t in [&p.video_track, &p.audio_track] {
        assert!(
            s.subscriber.wait_for_packets(t, 20, MEDIA_WAIT).await,
            "no media on {t}: {:?}",
            s.errors()
        );
    }
    // Let any duplicate offer arrive, then count msid lines per track in the
    // last offer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let offers = s.events_of("subscribe-offer");
    let last = offers.last().expect("at least one offer");
    let sdp = last.raw["offer"].as_str().expect("offer is a string");
    for t in [&p.video_track, &p.audio_track] {
        let n = sdp
            .lines()
            .filter(|l| l.starts_with("a=msid:") && l.ends_with(t.as_str()))
            .count();
        assert_eq!(n, 1, "track {t} appears {n} times in the last offer");
    }
    // The repeats were refused, not silently merged into new m-sections.
    assert!(
        s.errors().iter().all(|e| e.contains("already subscribed")),
        "{:?}",
        s.errors()
    );
    p.close().await;
    s.close().await;
    server.stop().await;
}

/// `/health`'s admission-control counters.
async fn forwarding(server: &TestServer) -> (u64, u64) {
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("health JSON");
    (
        v["forwardedTracks"].as_u64().expect("forwardedTracks"),
        v["forwardLimit"].as_u64().expect("forwardLimit"),
    )
}

async fn wait_forwarding(server: &TestServer, want: u64) {
    for _ in 0..100 {
        if forwarding(server).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "forwardedTracks never became {want}: {:?}",
        forwarding(server).await
    );
}

/// Admission control: with a budget of four forwarded tracks, two
/// subscribers of one audio+video publisher use it up; a newcomer's join is
/// refused with room-full while the admitted ones keep receiving; an
/// unsubscribe frees two slots and the newcomer gets in and receives media;
/// leaving releases everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_budget_refuses_newcomers_and_frees_on_unsubscribe() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start_with(|c| c.media.max_forwarded_tracks = 4).await;
    let room = "budget";
    let p = Driver::join(&server, "pub", room, Options::default()).await;
    let sub_opts = Options::subscriber();
    let a = Driver::join(&server, "a", room, sub_opts.clone()).await;
    let b = Driver::join(&server, "b", room, sub_opts.clone()).await;
    for s in [&a, &b] {
        s.wait_new_publisher("pub", 2).await;
        s.subscribe("pub");
    }
    for s in [&a, &b] {
        for t in [&p.video_track, &p.audio_track] {
            assert!(
                s.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
                "{} got no media on {t}: {:?}",
                s.id,
                s.errors()
            );
        }
    }
    assert_eq!(forwarding(&server).await, (4, 4));

    // The node is at its budget: a newcomer is refused.
    let mut c = server.connect("c").await;
    c.send(&ClientMessage::Join {
        room_name: room.into(),
    })
    .await
    .expect("send join");
    let e = c
        .wait_for("join error", Duration::from_secs(10), |r| {
            r.type_name() == "error" || r.type_name() == "joined"
        })
        .await
        .expect("a reply to join");
    assert_eq!(e.raw["code"], "room-full", "{}", e.raw);
    assert!(
        e.raw["message"].as_str().unwrap_or("").contains("limit"),
        "{}",
        e.raw
    );
    c.close().await;

    // The admitted keep receiving meanwhile.
    let before = b.subscriber.stats()[p.video_track.as_str()].packets;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = b.subscriber.stats()[p.video_track.as_str()].packets;
    assert!(after > before + 10, "b stalled: {before} -> {after}");

    // An unsubscribe frees two slots; the newcomer now gets in and receives.
    a.unsubscribe("pub");
    wait_forwarding(&server, 2).await;
    let c = Driver::join(&server, "c", room, sub_opts).await;
    c.wait_new_publisher("pub", 2).await;
    c.subscribe("pub");
    for t in [&p.video_track, &p.audio_track] {
        assert!(
            c.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
            "c got no media on {t}: {:?}",
            c.errors()
        );
    }
    assert_eq!(forwarding(&server).await, (4, 4));
    assert!(b.errors().is_empty() && c.errors().is_empty());

    for d in [p, a, b, c] {
        d.close().await;
    }
    wait_forwarding(&server, 0).await;
    server.stop().await;
}
