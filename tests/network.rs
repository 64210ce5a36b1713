//! Deployment networks: the media port budget, and real topologies (1:1
//! NAT) in network namespaces the tests make (`network/topo.rs`).
//! Runs inside the network namespace of scripts/test.sh (10.77.0.1).

mod common;
#[path = "network/topo.rs"]
mod topo;

use std::time::Duration;

use common::driver::{Driver, Options};
use common::peer::{PeerConfig, TestPublisher, TestSubscriber, TrackSpec};
use common::{media_slot, require_test_network, test_ip, TestServer, T};
use serde_json::{json, Value};
use webrtc::ice_transport::ice_server::RTCIceServer;

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
    let cfg = PeerConfig::on(test_ip());
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

// ------------------------------------------------------------------ NAT ----

const NAT_SECRET: &str = "network-test-secret-0123456789";
const NAT_PORT: &str = "9000";

/// The server behind the NAT, as clients on the public side reach it.
struct NatServer;

impl common::Endpoint for NatServer {
    fn ws_url(&self) -> String {
        format!("ws://{}:{NAT_PORT}/ws", topo::SERVER_PUBLIC)
    }
    fn user_token(&self, user: &str) -> String {
        rheo_sfu::auth::Verifier::new(&rheo_sfu::auth::AuthConfig {
            key: rheo_sfu::auth::JwtKey::Secret(NAT_SECRET.as_bytes().to_vec()),
            issuer: None,
            audience: None,
            leeway_secs: 0,
        })
        .expect("verifier")
        .issue_token(&common::token_request(user))
        .expect("token")
    }
}

fn nat_server(t: &topo::NatTopology, extra: &[(&str, &str)]) -> topo::ServerProcess {
    let mut env = vec![
        ("HOST", "0.0.0.0"),
        ("PORT", NAT_PORT),
        ("ANNOUNCED_IPS", topo::SERVER_PRIVATE),
        ("JWT_SECRET", NAT_SECRET),
        ("RELAY_PORT", "0"),
        ("RUST_LOG", "info"),
        ("LOG_FORMAT", "json"),
    ];
    env.extend_from_slice(extra);
    topo::ServerProcess::start(&t.server, &env)
}

/// What a publisher and a subscriber on the client side saw.
#[derive(Debug)]
struct CallOutcome {
    /// Packets the subscriber received per publisher track.
    received: Vec<u64>,
    /// The publish PeerConnection's state at the end.
    publish_state: String,
    /// Every address in the server's SDP and candidates.
    server_addresses: Vec<String>,
}

/// A publisher and a subscriber in the client namespace, through the NAT.
/// `expect_media`: wait for media (up to MEDIA_WAIT), or give it `quiet`
/// to show up and report what came.
async fn call_through_nat(t: &topo::NatTopology, expect_media: bool) -> CallOutcome {
    let client_ns = t.client.path();
    topo::in_netns(&client_ns, move || async move {
        // The client accepts the server's candidates at either address:
        // whether media flows is up to the network, not to this filter.
        let cfg = PeerConfig {
            ip: topo::ip(topo::CLIENT),
            remote_ips: vec![
                topo::ip(topo::SERVER_PUBLIC),
                topo::ip(topo::SERVER_PRIVATE),
            ],
            ice_servers: Vec::new(),
        };
        let room = "nat";
        let p = Driver::join(
            &NatServer,
            "pub",
            room,
            Options {
                prepare: false,
                peer: Some(cfg.clone()),
                ..Options::default()
            },
        )
        .await;
        let s = Driver::join(
            &NatServer,
            "sub",
            room,
            Options {
                peer: Some(cfg),
                ..Options::subscriber()
            },
        )
        .await;
        let publisher = p.publisher.clone().expect("publishing");
        let mut received = vec![0, 0];
        if expect_media {
            s.wait_new_publisher("pub", 2).await;
            s.subscribe("pub");
            for (i, t) in [&p.video_track, &p.audio_track].into_iter().enumerate() {
                assert!(
                    s.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
                    "no media through the NAT on {t}: {:?}; publish PC {}",
                    s.errors(),
                    publisher.connection_state()
                );
                received[i] = s.subscriber.stats()[t.as_str()].packets;
            }
        } else {
            // Long enough for ICE to connect many times over (it takes
            // well under a second here when it can).
            tokio::time::sleep(Duration::from_secs(6)).await;
            s.subscribe("pub");
            tokio::time::sleep(Duration::from_secs(2)).await;
            for (i, t) in [&p.video_track, &p.audio_track].into_iter().enumerate() {
                received[i] = s
                    .subscriber
                    .stats()
                    .get(t.as_str())
                    .map_or(0, |x| x.packets);
            }
        }
        let mut server_addresses = Vec::new();
        for d in [&p, &s] {
            for e in d.events() {
                let v = &e.raw;
                for sdp in [&v["answer"], &v["offer"]] {
                    if let Some(sdp) = sdp.as_str() {
                        server_addresses.extend(common::peer::sdp::sdp_candidate_addresses(sdp));
                    }
                }
                if let Some(c) = v["candidate"]["candidate"].as_str() {
                    server_addresses.extend(common::peer::sdp::sdp_candidate_addresses(&format!(
                        "a={c}"
                    )));
                }
            }
        }
        server_addresses.sort();
        server_addresses.dedup();
        server_addresses.retain(|a| a != "0.0.0.0");
        let publish_state = publisher.connection_state();
        p.close().await;
        s.close().await;
        CallOutcome {
            received,
            publish_state,
            server_addresses,
        }
    })
    .await
}

/// Two Chromium demo pages in the client namespace call each other
/// through the NAT (tests/browser/netns-call.mjs): the report per page.
fn chromium_through_nat(t: &topo::NatTopology, room: &str, expect_media: bool) -> Vec<Value> {
    let url = format!("http://{}:{NAT_PORT}", topo::SERVER_PUBLIC);
    let tokens = [
        common::Endpoint::user_token(&NatServer, &format!("{room}-a")),
        common::Endpoint::user_token(&NatServer, &format!("{room}-b")),
    ];
    let wait = if expect_media {
        Duration::from_secs(45)
    } else {
        // As for the webrtc-rs peers: ICE connects in well under a
        // second here when it can.
        Duration::from_secs(8)
    };
    let report = tokio::task::block_in_place(|| {
        topo::chromium_call(
            &t.client,
            &url,
            room,
            [&tokens[0], &tokens[1]],
            expect_media,
            wait,
        )
    });
    report["pages"].as_array().expect("pages").clone()
}

/// 1:1 NAT in three namespaces, the client (a webrtc-rs publisher and
/// subscriber, then two Chromium demo pages) behind a stateful firewall.
/// Without PUBLIC_IP the server offers its private address, which the
/// client cannot reach, and its checks towards the client come through the
/// NAT from an address the client never contacted, so the firewall drops
/// them: no media. With PUBLIC_IP set to the router's public address, the
/// same client publishes and subscribes through the NAT, and every server
/// candidate carries the public address (port kept). PUBLIC_IP=auto finds
/// that address through coturn's STUN listener on the public side; with no
/// STUN server answering, the server refuses to start with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_public_ip_makes_media_flow() {
    require_test_network();
    let _slot = media_slot().await;
    let t = topo::NatTopology::new(true);

    // Without PUBLIC_IP: no media.
    let mut server = nat_server(&t, &[]);
    server.wait_listening();
    let off = call_through_nat(&t, false).await;
    assert_eq!(
        off.received,
        vec![0, 0],
        "media flowed without PUBLIC_IP: {off:?}"
    );
    assert_ne!(off.publish_state, "connected", "{off:?}");
    assert_eq!(
        off.server_addresses,
        vec![topo::SERVER_PRIVATE.to_owned()],
        "{off:?}"
    );
    // Chromium behind the same firewall: nothing either.
    for page in chromium_through_nat(&t, "nat-chromium-off", false) {
        assert_eq!(page["received"], false, "{page}");
        for pc in ["publish", "subscribe"] {
            assert_ne!(page[pc]["state"], "connected", "{pc}: {page}");
        }
    }
    drop(server);

    // PUBLIC_IP set: media both ways through the NAT.
    let mut server = nat_server(&t, &[("PUBLIC_IP", topo::SERVER_PUBLIC)]);
    server.wait_listening();
    let on = call_through_nat(&t, true).await;
    assert!(on.received.iter().all(|&n| n >= 50), "{on:?}");
    assert_eq!(on.publish_state, "connected", "{on:?}");
    assert_eq!(
        on.server_addresses,
        vec![topo::SERVER_PUBLIC.to_owned()],
        "{on:?}"
    );
    // Chromium: two pages publish and decode each other through the NAT,
    // every PeerConnection's selected pair ends at the public address.
    for page in chromium_through_nat(&t, "nat-chromium", true) {
        assert_eq!(page["received"], true, "{page}");
        for pc in ["publish", "subscribe"] {
            assert_eq!(page[pc]["state"], "connected", "{pc}: {page}");
            assert_eq!(
                page[pc]["remoteAddress"],
                topo::SERVER_PUBLIC,
                "{pc}: {page}"
            );
        }
    }
    drop(server);

    // PUBLIC_IP=auto against coturn's STUN listener beyond the router.
    let stun = topo::Coturn::stun_only(&t.internet, topo::INTERNET_HOST);
    let url = format!("stun:{}:{}", topo::INTERNET_HOST, stun.port);
    let mut server = nat_server(&t, &[("PUBLIC_IP", "auto"), ("STUN_URL", &url)]);
    server.wait_listening();
    assert!(
        server
            .log_text()
            .contains(&format!("\"public_ip\":\"{}\"", topo::SERVER_PUBLIC)),
        "{}",
        server.log_text()
    );
    let auto = call_through_nat(&t, true).await;
    assert!(auto.received.iter().all(|&n| n >= 50), "{auto:?}");
    assert_eq!(
        auto.server_addresses,
        vec![topo::SERVER_PUBLIC.to_owned()],
        "{auto:?}"
    );
    drop(server);
    drop(stun);

    // No STUN server answers: the server does not start, and says why.
    let mut server = nat_server(&t, &[("PUBLIC_IP", "auto"), ("STUN_URL", &url)]);
    let code = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(1), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("PUBLIC_IP=auto: STUN server") && log.contains("no answer within"),
        "{log}"
    );
}

// ----------------------------------------------------------------- TURN ----

const TURN_SECRET: &str = "turn-rest-secret-for-the-test";

/// Local candidates a fresh webrtc-rs PeerConnection with `servers`
/// gathers in the client namespace (bounded): the relay ones.
async fn relay_candidates(servers: Vec<RTCIceServer>) -> Vec<String> {
    let cfg = PeerConfig {
        ice_servers: servers,
        ..PeerConfig::on(topo::ip(topo::CLIENT))
    };
    let pc = TestSubscriber::new(&cfg).await.expect("peer");
    pc.prepare_offer().await.expect("offer");
    assert!(
        pc.wait_gathering_complete(Duration::from_secs(15)).await,
        "gathering never ended"
    );
    let sdp = pc.local_description_sdp().await.unwrap_or_default();
    pc.close().await;
    sdp.lines()
        .filter(|l| l.contains(" typ relay"))
        .map(str::to_owned)
        .collect()
}

/// TURN for a client that cannot send UDP to the server: coturn with
/// `use-auth-secret` beyond the router, the client's firewall dropping
/// every UDP datagram to the server. The server hands each client TURN
/// credentials in `auth-ok` (`expiry:participantId`, HMAC-SHA1 of the
/// shared secret); a webrtc-rs publisher and subscriber using them get
/// media (and so do two Chromium demo pages), and the nominated pair in their stats is a relay pair on both
/// PeerConnections. `get-ice-servers` returns fresh ones. Credentials with
/// a wrong password, or correctly signed but expired, get no relay
/// candidate from coturn (the good ones do, on the same path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_relay_when_udp_to_the_server_is_blocked() {
    require_test_network();
    let _slot = media_slot().await;
    let t = topo::NatTopology::new(true);
    t.client.sh(&format!(
        "nft 'add chain inet fw output {{ type filter hook output priority 0; policy accept; }}'; \
         nft add rule inet fw output ip daddr {} meta l4proto udp drop",
        topo::SERVER_PUBLIC
    ));
    let turn = topo::Coturn::with_secret(&t.internet, topo::INTERNET_HOST, TURN_SECRET);
    let turn_url = format!("turn:{}:{}?transport=udp", topo::INTERNET_HOST, turn.port);
    let mut server = nat_server(
        &t,
        &[
            ("PUBLIC_IP", topo::SERVER_PUBLIC),
            ("TURN_URLS", &turn_url),
            ("TURN_SECRET", TURN_SECRET),
            ("TURN_TTL", "600"),
        ],
    );
    server.wait_listening();
    let client_ns = t.client.path();
    let url = turn_url.clone();
    topo::in_netns(&client_ns, move || async move {
        let cfg = PeerConfig {
            remote_ips: vec![topo::ip(topo::SERVER_PUBLIC)],
            ..PeerConfig::on(topo::ip(topo::CLIENT))
        };
        let opts = Options {
            prepare: false,
            peer: Some(cfg),
            server_ice_servers: true,
            ..Options::default()
        };
        let room = "turn";
        let p = Driver::join(&NatServer, "pub", room, opts.clone()).await;
        let s = Driver::join(
            &NatServer,
            "sub",
            room,
            Options {
                publish: false,
                prepare: true,
                ..opts
            },
        )
        .await;

        // auth-ok: the TURN URL and coturn's REST credentials.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let ice = &p.auth_ok["iceServers"][0];
        assert_eq!(ice["urls"], json!([url]), "{}", p.auth_ok);
        let username = ice["username"].as_str().expect("username").to_owned();
        let (expiry, who) = username.split_once(':').expect("expiry:participantId");
        let expiry: u64 = expiry.parse().expect("expiry");
        assert_eq!(who, "pub");
        assert!((now + 590..=now + 610).contains(&expiry), "{username}");
        assert_eq!(p.auth_ok["iceServersExpireAt"], expiry);
        assert_eq!(
            ice["credential"],
            rheo_sfu::net::turn::password(TURN_SECRET.as_bytes(), &username)
        );

        s.wait_new_publisher("pub", 2).await;
        s.subscribe("pub");
        for t in [&p.video_track, &p.audio_track] {
            assert!(
                s.subscriber.wait_for_packets(t, 50, MEDIA_WAIT).await,
                "no media over TURN on {t}: {:?}",
                s.errors()
            );
        }
        let publisher = p.publisher.clone().expect("publishing");
        for (what, pc) in [
            ("publish", publisher.peer_connection()),
            ("subscribe", s.subscriber.peer_connection()),
        ] {
            assert_eq!(
                common::peer::selected_local_candidate_type(&pc)
                    .await
                    .as_deref(),
                Some("relay"),
                "{what} PeerConnection"
            );
        }

        // get-ice-servers: fresh credentials on request.
        let mut c = signaling::client::Client::connect(
            &format!(
                "{}?token={}",
                common::Endpoint::ws_url(&NatServer),
                common::Endpoint::user_token(&NatServer, "asker")
            ),
            None,
        )
        .await
        .expect("connect");
        c.wait_type("auth-ok", T).await.expect("auth-ok");
        c.send_raw(r#"{"type":"get-ice-servers","requestId":7}"#)
            .await
            .expect("send");
        let fresh = c
            .wait_type("ice-servers", T)
            .await
            .expect("ice-servers")
            .raw;
        assert_eq!(fresh["requestId"], 7, "{fresh}");
        assert!(
            fresh["iceServers"][0]["username"]
                .as_str()
                .is_some_and(|u| u.ends_with(":asker")),
            "{fresh}"
        );
        c.close().await;

        // The credentials decide: good ones get a relay candidate from
        // coturn, a wrong password or an expired username none.
        let servers = common::peer::ice_servers_of(&p.auth_ok);
        assert!(
            !relay_candidates(servers.clone()).await.is_empty(),
            "good credentials"
        );
        let mut wrong = servers.clone();
        wrong[0].credential = "not-the-password".into();
        assert_eq!(
            relay_candidates(wrong).await,
            Vec::<String>::new(),
            "wrong password"
        );
        let mut expired = servers;
        let old = format!("{}:pub", now - 60);
        expired[0].credential = rheo_sfu::net::turn::password(TURN_SECRET.as_bytes(), &old);
        expired[0].username = old;
        assert_eq!(
            relay_candidates(expired).await,
            Vec::<String>::new(),
            "expired"
        );

        p.close().await;
        s.close().await;
    })
    .await;

    // Chromium with the credentials from auth-ok (the web client puts
    // them in both PeerConnections): two pages decode each other, and
    // each PeerConnection's selected pair is a relay pair.
    for page in chromium_through_nat(&t, "turn-chromium", true) {
        assert_eq!(page["received"], true, "{page}");
        for pc in ["publish", "subscribe"] {
            assert_eq!(page[pc]["state"], "connected", "{pc}: {page}");
            assert_eq!(page[pc]["local"], "relay", "{pc}: {page}");
        }
    }
    drop(server);
    drop(turn);
}

// ------------------------------------------------------------------ TLS ----

/// A CA and leaf certificates for 10.77.0.1, made with the openssl CLI.
struct Certs {
    dir: std::path::PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let dir = std::env::temp_dir().join(format!("rheo-sfu-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cert dir");
        let c = Certs { dir };
        c.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rheo-sfu test CA",
        ]);
        c
    }

    fn openssl(&self, args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl cannot run ({e}): install Debian's openssl (scripts/test.sh does)")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A leaf for 10.77.0.1 signed by the CA: (cert, key) paths.
    fn leaf(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=IP:10.77.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        (self.dir.join(crt), self.dir.join(key))
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn der(pem: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(pem)
        .expect("PEM certificate")
        .to_vec()
}

/// Puts `cert`/`key` in place the way a renewal does (write aside, rename).
fn install(cert: &std::path::Path, key: &std::path::Path, live: &std::path::Path) {
    for (from, to) in [(cert, "cert.pem"), (key, "key.pem")] {
        let tmp = live.join(format!("{to}.new"));
        std::fs::copy(from, &tmp).expect("copy");
        std::fs::rename(&tmp, live.join(to)).expect("rename");
    }
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A wss:// connection trusting only the test CA: the socket and the
/// certificate the server presented.
async fn wss(addr: std::net::SocketAddr, ca: &std::path::Path, path: &str) -> (Wss, Vec<u8>) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(ca).expect("CA"))
        .expect("CA into the root store");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::time::timeout(T, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let tls = tokio::time::timeout(
        T,
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(
            rustls_pki_types::ServerName::IpAddress(addr.ip().into()),
            tcp,
        ),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake with a certificate the CA signed for 10.77.0.1");
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .to_vec();
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://{addr}{path}"), tls)
        .await
        .expect("WebSocket upgrade over TLS");
    (ws, leaf)
}

async fn send_json(ws: &mut Wss, v: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await
        .expect("send");
}

/// The next JSON message of type `ty` (others are skipped), bounded.
async fn next_of(ws: &mut Wss, ty: &str) -> Value {
    use futures_util::StreamExt;
    tokio::time::timeout(T, async {
        loop {
            let m = ws.next().await.expect("socket open").expect("frame");
            if let Ok(text) = m.to_text() {
                if let Ok(v) = serde_json::from_str::<Value>(text) {
                    if v["type"] == ty {
                        return v;
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {ty} within {T:?}"))
}

/// The certificate new connections get, once it is `want` (bounded).
async fn wait_served_cert(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    want: &[u8],
    why: &str,
) {
    for _ in 0..100 {
        let (mut ws, leaf) = wss(addr, ca, "/ws").await;
        let _ = futures_util::SinkExt::close(&mut ws).await;
        if leaf == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the new certificate was never served ({why})");
}

/// TLS on PORT: a wss:// client that trusts the test CA authenticates and
/// joins; a plain ws:// client gets HTTP 400 saying to use wss:// (plain
/// HTTP from loopback is served: health probes); after
/// SIGHUP new connections get the new certificate while the session opened
/// before keeps working (ping, chat); a changed file is picked up without
/// a signal; a key that does not match the certificate, and a missing key
/// file, stop the server at start with a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wss_plain_ws_refused_reload_keeps_sessions() {
    require_test_network();
    let certs = Certs::new();
    let (a_crt, a_key) = certs.leaf("a");
    let (b_crt, b_key) = certs.leaf("b");
    let live = certs.dir.join("live");
    std::fs::create_dir_all(&live).expect("live dir");
    install(&a_crt, &a_key, &live);
    let port = common::procs::free_port().to_string();
    let (cert_path, key_path) = (
        live.join("cert.pem").display().to_string(),
        live.join("key.pem").display().to_string(),
    );
    let env = |cert: &str, key: &str| -> Vec<(String, String)> {
        [
            ("HOST", "0.0.0.0"),
            ("PORT", port.as_str()),
            ("ANNOUNCED_IPS", "10.77.0.1"),
            ("JWT_SECRET", NAT_SECRET),
            ("RELAY_PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("TLS_CERT_PATH", cert),
            ("TLS_KEY_PATH", key),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let start = |e: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        topo::ServerProcess::start_here(&pairs)
    };
    let mut server = start(&env(&cert_path, &key_path));
    server.wait_listening();
    let addr = std::net::SocketAddr::new(test_ip(), port.parse().expect("port"));
    let token = common::Endpoint::user_token(&NatServer, "alice");

    let (mut a, leaf) = wss(addr, &certs.ca(), &format!("/ws?token={token}")).await;
    assert_eq!(leaf, der(&a_crt), "the configured certificate is served");
    assert_eq!(next_of(&mut a, "auth-ok").await["participantId"], "alice");
    send_json(&mut a, json!({"type": "join", "roomName": "tls"})).await;
    next_of(&mut a, "joined").await;

    // Plain ws:// on the TLS port: a readable refusal.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("use https:// or wss://"), "{body}");
        }
        other => panic!(
            "plain ws:// to the TLS port: {:?}",
            other.map(|_| "connected")
        ),
    }

    // SIGHUP after a renewal: new connections get the new certificate.
    install(&b_crt, &b_key, &live);
    let pid = server.pid().expect("server runs").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    wait_served_cert(addr, &certs.ca(), &der(&b_crt), "SIGHUP").await;
    let log = server.log_text();
    assert!(
        log.contains("TLS certificate reloaded") && log.contains("SIGHUP"),
        "{log}"
    );

    // The session opened before the reload goes on.
    send_json(&mut a, json!({"type": "ping"})).await;
    next_of(&mut a, "pong").await;
    send_json(
        &mut a,
        json!({"type": "chat", "roomName": "tls", "text": "still here"}),
    )
    .await;
    assert_eq!(next_of(&mut a, "chat").await["text"], "still here");

    // A changed file without a signal is picked up too.
    install(&a_crt, &a_key, &live);
    wait_served_cert(addr, &certs.ca(), &der(&a_crt), "file change").await;
    assert!(
        server.log_text().contains("file changed"),
        "{}",
        server.log_text()
    );
    send_json(&mut a, json!({"type": "ping"})).await;
    next_of(&mut a, "pong").await;
    drop(a);
    drop(server);

    // Clear errors at start.
    let mut bad = start(&env(
        &a_crt.display().to_string(),
        &b_key.display().to_string(),
    ));
    assert_eq!(
        bad.wait_exit(Duration::from_secs(15)),
        Some(2),
        "{}",
        bad.log_text()
    );
    assert!(
        bad.log_text().contains("is not the key of the certificate"),
        "{}",
        bad.log_text()
    );
    let mut bad = start(&env(&a_crt.display().to_string(), "/nonexistent/key.pem"));
    assert_eq!(
        bad.wait_exit(Duration::from_secs(15)),
        Some(2),
        "{}",
        bad.log_text()
    );
    assert!(
        bad.log_text()
            .contains("TLS_KEY_PATH /nonexistent/key.pem: cannot read"),
        "{}",
        bad.log_text()
    );
}
