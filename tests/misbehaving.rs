//! Misbehaving clients next to good ones (issue 16, part 2): on one node
//! (the real binary, default limits), a room of four webrtc-rs
//! participants runs while seven misbehaving clients attack at once: one
//! that stops reading its WebSocket, one that holds it without reading or
//! answering pings, one that floods messages, one that opens connections as
//! fast as it can, one that never finishes ICE, one that sprays junk
//! RTP/RTCP/STUN/DTLS datagrams over the media port range, and one that
//! subscribes and unsubscribes in a tight loop. The scenario is
//! `loadtest::misbehave` (also run longer, release build, by
//! `bench/misbehaving.sh`).
//!
//! Pass: each attacker got the treatment docs/SECURITY.md documents, the
//! good call kept ≥ 99.9 % delivery during the attack, a good client joining
//! during the attack got all media within 1.5 × the quiet median + 250 ms,
//! and once everyone left the node holds no connection, PeerConnection,
//! media port or descriptor more than before.

mod common;

use std::time::{Duration, Instant};

use common::procs::{NodeProcess, CLUSTER_SECRET};
use common::{media_slot, require_test_network, test_ip, Endpoint};
use loadtest::misbehave::{self, Config, Documented};

/// The node's media port range: the junk sprayer covers all of it.
const PORTS: (u16, u16) = (14_000, 14_063);

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn scrape(node: &NodeProcess) -> String {
    let (status, body) = common::http_get(node.addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The sum of a metric's samples (all label sets).
fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "open bug: the server keeps 1-3 UDP sockets of subscribe transports after a subscribe-churning client leaves (5 of 7 runs; docs/reliability/misbehaving.md); run with -- --ignored"]
async fn misbehaving_clients_next_to_a_good_call() {
    require_test_network();
    let _slot = media_slot().await;
    let node = NodeProcess::start_single(
        "misbehave",
        &[
            // The production default, so the media stack's warnings (and
            // their sampling) are in the log the junk check reads.
            ("RUST_LOG", "info"),
            ("RTC_MIN_PORT", &PORTS.0.to_string()),
            ("RTC_MAX_PORT", &PORTS.1.to_string()),
        ],
    )
    .await;
    let pid = node.pid().expect("running");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds0 = fds(pid);
    let links0: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    println!("descriptors at start: {links0:?}");

    let cfg = Config {
        ws_url: format!("ws://{}/ws", node.addr),
        secret: CLUSTER_SECRET.into(),
        ip: test_ip(),
        junk_from: "10.77.0.2".parse().expect("literal"),
        media_ports: PORTS,
        server_log: Some(node.log.clone()),
        participants: 4,
        probes: 3,
        quiet_s: 12.0,
        attack_s: 40.0,
        documented: Documented::default(),
        server_pid: Some(pid),
    };
    let started = Instant::now();
    let report = misbehave::run(cfg)
        .await
        .unwrap_or_else(|e| panic!("scenario failed: {e:#}; log {}", node.log.display()));
    let took = started.elapsed();
    // The report, for bench/misbehaving-report.py or a look after a failure.
    let json = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("misbehaving.json");
    let _ = std::fs::write(
        &json,
        serde_json::to_string_pretty(&report).expect("report is JSON"),
    );
    println!("report: {}", json.display());
    for o in &report.outcomes {
        println!(
            "{} {}: {}",
            if o.pass { "ok  " } else { "FAIL" },
            o.attacker,
            o.observed
        );
    }
    println!(
        "good call: quiet {:?}, attack {:?}; joins quiet {:?} attack {:?} (bound {:?} ms); load {:?}; {took:?}",
        report.quiet,
        report.attack,
        report.joins_quiet,
        report.joins_attack,
        report.join_bound_ms(),
        report.loadavg
    );

    // Everyone is gone: the node is back where it started.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut conns, mut pcs, mut ports, mut now_fds);
    loop {
        let m = scrape(&node).await;
        conns = total(&m, "sfu_connections");
        pcs = total(&m, "sfu_peer_connections");
        ports = total(&m, "sfu_media_ports_in_use");
        now_fds = fds(pid);
        if (conns, pcs, ports) == (0.0, 0.0, 0.0) && now_fds <= fds0 {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("after: connections {conns}, PeerConnections {pcs}, media ports {ports}, descriptors {fds0} -> {now_fds}");
    if now_fds > fds0 {
        let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|l| l.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        // What the leftover sockets are (kernel tables of the node's
        // namespace: TCP and UDP, local and remote address, state).
        let mut tables = String::new();
        for t in ["tcp", "udp", "tcp6", "udp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{t}")) {
                for l in text.lines().skip(1) {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.len() > 9
                        && links.iter().any(|k| *k == format!("socket:[{}]", f[9]))
                        && !links0.iter().any(|k| *k == format!("socket:[{}]", f[9]))
                    {
                        tables.push_str(&format!("{t} {} -> {} state {}\n", f[1], f[2], f[3]));
                    }
                }
            }
        }
        println!("descriptors now: {links:?}\n{tables}");
    }

    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}\nlog {}",
        failures.len(),
        failures.join("\n"),
        node.log.display()
    );
    assert_eq!(
        (conns, pcs, ports),
        (0.0, 0.0, 0.0),
        "connections, PeerConnections and media ports left after everyone left"
    );
    assert!(
        now_fds <= fds0,
        "descriptors {fds0} before, {now_fds} 40 s after everyone left"
    );
}

/// Regression for what the scenario found: PeerConnections that never
/// connect were held for as long as the WebSocket lived (with their UDP
/// socket and RTC port) when ICE never started: a `subscribe-prepare`
/// whose answer the client never applies, and a publish transport made by
/// a lone trickled candidate. Now each is closed 30 s after it was created
/// (media/liveness.rs); the session goes on and gets a fresh subscribe
/// PeerConnection when it asks again. Before the fix: both still open
/// after 45 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_connected_peer_connections_are_closed() {
    require_test_network();
    let _slot = media_slot().await;
    let node = NodeProcess::start_single(
        "never-connected",
        &[
            ("RTC_MIN_PORT", "14100"),
            ("RTC_MAX_PORT", "14131"),
            // The gauge follows the PeerConnections within a second.
            ("MEDIA_STATS_SECS", "1"),
        ],
    )
    .await;
    let url = format!("{}?token={}", node.ws_url(), node.user_token("never"));
    let mut c = signaling::client::Client::connect(&url, None)
        .await
        .expect("connect");
    c.wait_type("auth-ok", common::T).await.expect("auth-ok");
    assert_eq!(common::join(&mut c, "nc").await["type"], "joined");
    // A lone publish candidate (at an address of the test subnet that no
    // interface holds: allowed, and never probed without an offer).
    let candidate = serde_json::json!({"candidate": "candidate:1 1 udp 2122260223 10.77.0.3 40000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    c.send_raw(
        &serde_json::json!({"type": "publish-ice-candidate", "roomName": "nc", "candidate": candidate})
            .to_string(),
    )
    .await
    .expect("send candidate");
    // A prepared subscribe PeerConnection whose answer is never applied.
    let rtc = sfu_testkit::rtc::Rtc::new(test_ip()).expect("rtc");
    let pc = rtc.peer().await.expect("pc");
    let _dc = pc.create_data_channel("prepare", None).await.expect("dc");
    let offer = sfu_testkit::rtc::offer(&pc).await.expect("offer");
    let created = Instant::now();
    c.send_raw(
        &serde_json::json!({"type": "subscribe-prepare", "roomName": "nc", "offer": offer})
            .to_string(),
    )
    .await
    .expect("send prepare");
    c.wait_type("subscribe-prepare-answer", common::T)
        .await
        .expect("prepare answer");
    let _ = pc.close().await;

    let mut seen = 0.0;
    let mut gone = None;
    while created.elapsed() < Duration::from_secs(45) {
        let m = scrape(&node).await;
        let pcs = total(&m, "sfu_peer_connections");
        seen = f64::max(seen, pcs);
        if seen >= 2.0 && pcs == 0.0 {
            gone = Some(created.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("never-connected: {seen} PeerConnections, gone after {gone:?}");
    assert_eq!(
        seen, 2.0,
        "the candidate and the prepare made two PeerConnections"
    );
    let gone = gone.expect("PeerConnections still open 45 s after they were made");
    assert!(
        gone >= Duration::from_secs(29) && gone <= Duration::from_secs(36),
        "closed after {gone:?}, not at the 30 s timeout"
    );
    let m = scrape(&node).await;
    assert_eq!(total(&m, "sfu_media_ports_in_use"), 0.0, "media ports held");
    // The session goes on, and a new prepare gets a fresh PeerConnection.
    c.send_raw(r#"{"type":"ping"}"#).await.expect("ping");
    c.wait_type("pong", common::T).await.expect("pong");
    let pc = rtc.peer().await.expect("pc");
    let _dc = pc.create_data_channel("prepare", None).await.expect("dc");
    let offer = sfu_testkit::rtc::offer(&pc).await.expect("offer");
    c.send_raw(
        &serde_json::json!({"type": "subscribe-prepare", "roomName": "nc", "offer": offer})
            .to_string(),
    )
    .await
    .expect("send prepare");
    let answer = c
        .wait_for("prepare answer or error", common::T, |r| {
            matches!(r.type_name(), "subscribe-prepare-answer" | "error")
        })
        .await
        .expect("reply");
    assert_eq!(
        answer.raw["type"], "subscribe-prepare-answer",
        "{}",
        answer.raw
    );
    sfu_testkit::rtc::accept_answer(&rtc, &pc, answer.raw["answer"].as_str().expect("sdp"))
        .await
        .expect("apply answer");
    let _ = pc.close().await;
    c.close().await;
}
