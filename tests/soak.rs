//! The short churn soak (issue 16, part 1): two minutes of rooms opening
//! and closing around a stable call, against the real server binary, through
//! the load tester's soak scenario (`loadtest::soak`), in-process. After the
//! load stops and the last client is gone, the server must be back at its
//! baseline within 30 s (RSS within ±5 %; open FDs, UDP sockets, threads,
//! tokio tasks and every count it reports exactly), and the stable call must
//! keep ≥ 99.9 % delivery all along. `bench/soak.sh` runs the same scenario
//! for 30 minutes at half the node's capacity.

mod common;

use std::path::PathBuf;

use clap::Parser;
use common::procs::{NodeProcess, CLUSTER_SECRET};
use common::{media_slot, require_test_network, TEST_IP};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_soak_gives_everything_back() {
    require_test_network();
    let _slot = media_slot().await;
    let node = NodeProcess::start_single("soak", &[]).await;
    let pid = node.pid().expect("node runs").to_string();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak");
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("ws://{}/ws", node.addr);
    let secs = std::env::var("SOAK_TEST_SECS").unwrap_or_else(|_| "120".into());
    let argv = [
        "soak",
        "--url",
        &url,
        "--jwt-secret",
        CLUSTER_SECRET,
        "--ip",
        TEST_IP,
        "--server-pid",
        &pid,
        "--duration",
        &secs,
        "--stable",
        "3",
        "--rooms",
        "4",
        "--room-size",
        "3",
        "--session-secs",
        "15",
        "--video-kbps",
        "300",
        "--out",
        dir.to_str().expect("utf-8 path"),
        "--label",
        "tests/soak.rs",
    ];
    let args = loadtest::soak::SoakArgs::try_parse_from(argv).expect("valid arguments");
    let report = loadtest::soak::main_with(args)
        .await
        .unwrap_or_else(|e| panic!("soak failed to run: {e:#}; server log {}", node.log.display()));
    let s = &report.summary;
    let summary = serde_json::to_string_pretty(s).expect("summary is JSON");
    println!("{summary}");
    assert!(
        s.pass,
        "soak criteria not met: {:#?}\nserver log {}; results {}",
        s.failures,
        node.log.display(),
        dir.display()
    );
    // The churn did what it is for: rooms came and went, every kind of
    // ending happened, renegotiations and resubscriptions ran.
    let c = &s.churn;
    assert!(c.sessions >= 20, "only {} churn sessions", c.sessions);
    assert!(c.leaves > 0 && c.socket_drops > 0 && c.pc_closes > 0, "{c:?}");
    assert!(c.unpublishes > 0 && c.resubscribes > 0, "{c:?}");
    assert_eq!(
        c.failed, 0,
        "churn sessions failed: {c:?}; {:?}",
        s.churn_errors
    );
    let peak_rooms = s
        .recovery
        .iter()
        .find(|r| r.name == "rooms")
        .map_or(0.0, |r| r.peak);
    assert!(peak_rooms >= 3.0, "rooms at most {peak_rooms} at once");
    for png in ["soak.png", "recovery.png"] {
        let bytes = std::fs::read(dir.join(png)).expect("plot written");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png} is not a PNG");
    }
}
