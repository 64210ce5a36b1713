//! The short churn soak (issue 16, part 1): two minutes of rooms opening
//! and closing around a stable call, after a 30-s warm-up of the same load,
//! against the real server binary, through the load tester's soak scenario
//! (`loadtest::soak`), in-process. After the load stops and the last client
//! is gone, the server must be back at its baseline within 30 s (open FDs,
//! UDP sockets, threads, tokio tasks and every count it reports exactly, the
//! live heap within 5 %), and the stable call must keep >= 99.9 % delivery
//! all along (overall and in every 10-s window). Media is light (100 kbit/s
//! at 15 fps, 25 audio packets/s): the peers here are a debug build sharing
//! two cores with the server, and the packet rate, not the bitrate, is
//! what costs them. `bench/soak.sh` runs the same scenario for 30 minutes
//! at half the node's capacity, release build.

mod common;

use std::path::PathBuf;

use clap::Parser;
use common::procs::{NodeProcess, CLUSTER_SECRET};
use common::{media_slot, require_test_network, TEST_IP};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the server leaks an ICE candidate socket (1 UDP socket, 1 FD, 2 tasks) in about half of the 30-60 s churn phases: see docs/reliability/soak.md; enable once fixed"]
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
        "100",
        "--video-fps",
        "15",
        "--audio-pps",
        "25",
        "--out",
        dir.to_str().expect("utf-8 path"),
        "--label",
        "tests/soak.rs",
    ];
    let args = loadtest::soak::SoakArgs::try_parse_from(argv).expect("valid arguments");
    let report = loadtest::soak::main_with(args).await.unwrap_or_else(|e| {
        panic!(
            "soak failed to run: {e:#}; server log {}",
            node.log.display()
        )
    });
    let s = &report.summary;
    let summary = serde_json::to_string_pretty(s).expect("summary is JSON");
    println!("{summary}");
    // RSS is measured and reported (its verdict is in the summary and in
    // `pass`), but not asserted here: after two minutes the allocator
    // (mimalloc) keeps 5-15 % of the baseline's anonymous memory resident
    // and moves it by a few MiB while the server is idle, with the live
    // heap back at its baseline to the KiB (docs/reliability/soak.md).
    // The live heap, counted in the server's allocator, is asserted instead:
    // a leak shows there, allocator retention does not.
    let failures: Vec<&String> = s
        .failures
        .iter()
        .filter(|f| !f.starts_with("rss_mb "))
        .collect();
    assert!(
        failures.is_empty(),
        "soak criteria not met: {failures:#?}\nserver log {}; results {}",
        node.log.display(),
        dir.display()
    );
    let heap = s
        .recovery
        .iter()
        .find(|r| r.name == "heap_mb")
        .expect("live heap checked");
    assert!(
        heap.baseline > 0.0 && heap.pass,
        "live heap not counted or not back: {heap:?}"
    );
    // The churn did what it is for: rooms came and went, every kind of
    // ending happened, renegotiations and resubscriptions ran.
    let c = &s.churn;
    assert!(c.sessions >= 20, "only {} churn sessions", c.sessions);
    assert!(
        c.leaves > 0 && c.socket_drops > 0 && c.pc_closes > 0,
        "{c:?}"
    );
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
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{png} is not a PNG"
        );
    }
}
