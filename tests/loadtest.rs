//! Smoke runs of the load tester (`loadtest/`) against the real server
//! binary: each scenario with a few clients for a few seconds, inside the
//! test network. They check that media is delivered and measured, and that
//! the JSON results and the PNG plot are written. The load tester runs
//! in-process through the same entry point as its binary (`main_with`).

mod common;

use std::path::PathBuf;

use clap::Parser;
use common::procs::{NodeProcess, CLUSTER_SECRET};
use common::{media_slot, require_test_network, TEST_IP};
use serde_json::Value;

struct Smoke {
    report: loadtest::Report,
    json: Value,
}

async fn smoke(name: &str, args: &[&str]) -> Smoke {
    require_test_network();
    let _slot = media_slot().await;
    let node = NodeProcess::start_single(&format!("lt-{name}"), &[]).await;
    let pid = node.pid().expect("node runs").to_string();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("loadtest");
    std::fs::create_dir_all(&dir).expect("output dir");
    let out = dir.join(format!("{name}.json"));
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&png);
    let url = format!("ws://{}/ws", node.addr);
    let mut argv = vec![
        "loadtest",
        "--url",
        &url,
        "--jwt-secret",
        CLUSTER_SECRET,
        "--ip",
        TEST_IP,
        "--server-pid",
        &pid,
        "--quiet",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    argv.extend_from_slice(args);
    let parsed = loadtest::Args::try_parse_from(&argv).expect("valid arguments");
    let report = loadtest::main_with(parsed).await.unwrap_or_else(|e| {
        panic!(
            "loadtest {name} failed: {e:#}; server log {}",
            node.log.display()
        )
    });
    let text = std::fs::read_to_string(&out).expect("JSON results written");
    let json: Value = serde_json::from_str(&text).expect("results are JSON");
    let bytes = std::fs::read(&png).expect("PNG plot written");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{} is not a plot ({} bytes)",
        png.display(),
        bytes.len()
    );
    println!("{name}: results {} plot {}", out.display(), png.display());
    Smoke { report, json }
}

/// What every scenario must show: admitted clients, nothing failed, media
/// measured through the server, numbers in the JSON equal to the report.
fn check_common(s: &Smoke, min_delivery: f64) {
    let sum = &s.report.summary;
    let clients: Vec<String> = s
        .report
        .clients_detail
        .iter()
        .map(|c| format!("{} {:?} {:?}", c.name, c.delivery, c.error))
        .collect();
    assert_eq!(sum.failed, 0, "failed sessions: {clients:?}");
    assert_eq!(sum.refused, 0, "refused sessions: {clients:?}");
    assert!(sum.expected_packets > 100, "too little expected: {sum:?}");
    let delivery = sum.delivery.expect("delivery measured");
    assert!(
        delivery >= min_delivery && delivery <= 1.0,
        "delivery {delivery} (expected {}, received {}); clients {clients:?}",
        sum.expected_packets,
        sum.received_packets
    );
    let delay = sum.delay_ms.as_ref().expect("delay measured");
    assert!(delay.count > 0 && delay.p50 > 0.0 && delay.p50 <= delay.p99);
    let server = s.report.server.as_ref().expect("server sampled");
    assert!(
        server.cpu_seconds > 0.0,
        "server CPU not measured: {server:?}"
    );
    assert!(
        server.rss_window_mb > 1.0,
        "server RSS not measured: {server:?}"
    );
    assert_eq!(
        s.json["summary"]["received_packets"].as_u64(),
        Some(sum.received_packets)
    );
    assert_eq!(s.json["scenario"], s.report.scenario.as_str());
    let series = s.json["series"].as_array().expect("series");
    assert!(series.len() >= 3, "per-second series too short");
    assert!(
        series.iter().any(|p| p["delivery_pct"].as_f64().is_some()),
        "no per-second delivery"
    );
    assert!(
        s.json["clients_detail"].as_array().map(Vec::len) == Some(s.report.clients_detail.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fanout_smoke_delivers_to_every_subscriber() {
    let s = smoke(
        "fanout",
        &["--scenario", "fanout", "-n", "4", "--duration", "3"],
    )
    .await;
    check_common(&s, 0.99);
    let subs: Vec<_> = s
        .report
        .clients_detail
        .iter()
        .filter(|c| c.name.starts_with("sub-"))
        .collect();
    assert_eq!(subs.len(), 4);
    for c in subs {
        assert_eq!(c.tracks, 2, "{} should receive video and audio", c.name);
        assert!(c.delivery.unwrap_or(0.0) >= 0.99, "{c:?}");
        assert!(c.join_to_first_packet_ms.is_some(), "{c:?}");
    }
    let joins = s
        .report
        .summary
        .join_to_first_packet_ms
        .as_ref()
        .expect("join latency");
    assert_eq!(joins.count, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn room_smoke_everyone_receives_everyone() {
    let s = smoke(
        "room",
        &["--scenario", "room", "-n", "3", "--duration", "3"],
    )
    .await;
    check_common(&s, 0.99);
    assert_eq!(s.report.publishers, 3);
    for c in &s.report.clients_detail {
        assert_eq!(
            c.tracks, 4,
            "{} should receive two tracks of two others",
            c.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_smoke_sessions_come_and_go() {
    let s = smoke(
        "churn",
        &[
            "--scenario",
            "churn",
            "-n",
            "3",
            "--churn-rate",
            "0.75",
            "--ramp-rate",
            "3",
            "--duration",
            "12",
        ],
    )
    .await;
    // Sessions are short and partly outside the window; allow a little
    // edge loss but not a broken session.
    check_common(&s, 0.97);
    let sessions = s.report.summary.sessions;
    assert!(
        sessions >= 6,
        "only {sessions} sessions: nobody left and rejoined"
    );
    let joins = s
        .report
        .summary
        .join_to_first_packet_ms
        .as_ref()
        .expect("join latency");
    assert!(joins.count >= 5, "{joins:?}");
}
