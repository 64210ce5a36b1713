//! Deployment networks: the media port budget (here), and the topologies
//! of `network/` (1:1 NAT) built in network namespaces the tests make.
//! Runs inside the network namespace of scripts/test.sh (10.77.0.1).

mod common;

use std::time::Duration;

use common::driver::{Driver, Options};
use common::peer::{PeerConfig, TestPublisher, TestSubscriber, TrackSpec};
use common::{media_slot, require_test_network, test_ip, TestServer, T};
use serde_json::{json, Value};

const MEDIA_WAIT: Duration = Duration::from_secs(20);

/// A media port range of four ports, below 1024: never an ephemeral port
/// of the test namespace (1024-14999, scripts/in-testnet.sh) and never one
/// of rheomesh's relay sockets (15000 and up), so nothing else can take them.
const PORTS: (u16, u16) = (700, 703);

/// `/health`'s `mediaPorts`.
async fn media_ports(server: &TestServer) -> Value {
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("health JSON");
    v["mediaPorts"].clone()
}

/// UDP sockets bound in `PORTS` now, read from the kernel (`/proc/net/udp`):
/// what the server really holds, not what it counts.
fn udp_ports_bound() -> Vec<u16> {
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1)?.split_once(':'))
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .filter(|p| (PORTS.0..=PORTS.1).contains(p))
        .collect();
    ports.sort_unstable();
    ports
}

async fn wait_ports_left(server: &TestServer, left: u64) {
    for _ in 0..100 {
        if media_ports(server).await["left"] == left {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "mediaPorts.left never became {left}: {}",
        media_ports(server).await
    );
}

/// The next `error` (or `want`) on a raw client.
async fn reply(c: &mut signaling::client::Client, want: &str) -> Value {
    c.wait_for(want, T, |r| {
        matches!(r.type_name(), "error") || r.type_name() == want
    })
    .await
    .unwrap_or_else(|e| panic!("no reply ({want} or error): {e}"))
    .raw
}

/// Four media ports hold four PeerConnections (one announced address, no
/// ICE servers: one port each, measured in the kernel's socket table). The
/// fifth, on every path that makes one (publish-offer, subscribe-prepare,
/// subscribe-request), is refused at once with `room-full` and a message
/// naming the range, while the admitted participants keep their media;
/// `/health` shows the ports in use and left. A participant leaving returns
/// its port, and the next one gets in and receives media through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_budget_refuses_the_peer_connection_that_does_not_fit() {
    require_test_network();
    let _slot = media_slot().await;
    assert!(
        udp_ports_bound().is_empty(),
        "ports {PORTS:?} are taken before the test"
    );
    let server = TestServer::start_with(|c| c.media.port_range = Some(PORTS)).await;
    let room = "ports";
    let h = media_ports(&server).await;
    assert_eq!(
        (
            &h["min"],
            &h["max"],
            &h["perPeerConnection"],
            &h["peerConnections"]
        ),
        (&json!(700), &json!(703), &json!(1), &json!(4)),
        "{h}"
    );
    assert_eq!((&h["inUse"], &h["left"]), (&json!(0), &json!(4)), "{h}");

    // One publish PeerConnection and three subscribe PeerConnections (two
    // made by subscribe-prepare, one by the first subscribe-request).
    let p = Driver::join(
        &server,
        "pub",
        room,
        Options {
            prepare: false,
            ..Options::default()
        },
    )
    .await;
    let subs = [
        Driver::join(&server, "a", room, Options::subscriber()).await,
        Driver::join(&server, "b", room, Options::subscriber()).await,
        Driver::join(
            &server,
            "c",
            room,
            Options {
                prepare: false,
                ..Options::subscriber()
            },
        )
        .await,
    ];
    for s in &subs {
        s.wait_new_publisher("pub", 2).await;
        s.subscribe("pub");
    }
    for s in &subs {
        for t in [&p.video_track, &p.audio_track] {
            assert!(
                s.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
                "{} got no media on {t}: {:?}",
                s.id,
                s.errors()
            );
        }
    }
    let h = media_ports(&server).await;
    assert_eq!(
        (&h["inUse"], &h["left"], &h["peerConnectionsInUse"]),
        (&json!(4), &json!(0), &json!(4)),
        "{h}"
    );
    assert_eq!(
        udp_ports_bound(),
        vec![700, 701, 702, 703],
        "one socket per PeerConnection, all in the range"
    );

    // The fifth PeerConnection, on each path that makes one.
    let cfg = PeerConfig { ip: test_ip() };
    let mut d = server.connect("d").await;
    let offer = TestPublisher::new(&cfg, &[TrackSpec::video("d-video", "d-stream")])
        .await
        .expect("publisher pc")
        .create_offer()
        .await
        .expect("offer");
    let prepare = TestSubscriber::new(&cfg)
        .await
        .expect("subscriber pc")
        .prepare_offer()
        .await
        .expect("prepare offer");
    for (msg, want) in [
        (
            json!({"type": "publish-offer", "roomName": room, "offer": offer, "requestId": 1}),
            "publish-answer",
        ),
        (
            json!({"type": "subscribe-prepare", "roomName": room, "offer": prepare, "requestId": 2}),
            "subscribe-prepare-answer",
        ),
        (
            json!({"type": "subscribe-request", "roomName": room, "publisherId": "pub", "requestId": 3}),
            "subscribe-offer",
        ),
    ] {
        d.send_raw(&msg.to_string()).await.expect("send");
        let e = reply(&mut d, want).await;
        assert_eq!(e["type"], "error", "{msg}: {e}");
        assert_eq!(e["code"], "room-full", "{e}");
        assert_eq!(e["requestId"], msg["requestId"], "{e}");
        let text = e["message"].as_str().unwrap_or_default();
        assert!(
            text.contains("no media ports left") && text.contains("700-703"),
            "{e}"
        );
    }
    // Still four sockets: the refused requests bound nothing.
    assert_eq!(udp_ports_bound(), vec![700, 701, 702, 703]);

    // The admitted keep their media meanwhile.
    for s in &subs {
        let before = s.subscriber.stats()[p.video_track.as_str()].packets;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = s.subscriber.stats()[p.video_track.as_str()].packets;
        assert!(after > before + 5, "{} stalled: {before} -> {after}", s.id);
        assert!(s.errors().is_empty(), "{}: {:?}", s.id, s.errors());
    }

    // c leaves: its port comes back, and d subscribes through it.
    let [a, b, c] = subs;
    c.close().await;
    wait_ports_left(&server, 1).await;
    d.close().await;
    let d = Driver::join(
        &server,
        "d",
        room,
        Options {
            prepare: false,
            ..Options::subscriber()
        },
    )
    .await;
    d.wait_new_publisher("pub", 2).await;
    d.subscribe("pub");
    for t in [&p.video_track, &p.audio_track] {
        assert!(
            d.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
            "d got no media on {t}: {:?}",
            d.errors()
        );
    }
    assert_eq!(media_ports(&server).await["left"], 0);

    for x in [p, a, b, d] {
        x.close().await;
    }
    wait_ports_left(&server, 4).await;
    server.stop().await;
}
