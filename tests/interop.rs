//! Interop with aiortc, an independent WebRTC stack that does not implement
//! ICE restarts: it works only if the server never needs one. The aiortc
//! peer (`tests/interop/aiortc_peer.py`) follows docs/PROTOCOL.md as an app
//! developer would (the seed-001 flow); the other side is a webrtc-rs peer.
//! Runs inside the network namespace of scripts/test.sh, with the Python of
//! the venv that scripts/test.sh creates (`INTEROP_PYTHON`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::driver::{Driver, Options};
use common::{media_slot, require_test_network, TestServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

fn python() -> PathBuf {
    let p = std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python")
        });
    assert!(
        p.exists(),
        "no Python with aiortc at {} (scripts/test.sh creates it; or set INTEROP_PYTHON)",
        p.display()
    );
    p
}

/// A running aiortc peer and its JSON events.
struct Aiortc {
    child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Aiortc {
    /// Starts the peer in `mode` as `user` in `room` of `server`, with
    /// the mode's own arguments after.
    fn spawn(server: &TestServer, mode: &str, user: &str, room: &str, extra: &[&str]) -> Aiortc {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aiortc_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(mode)
            .args(["--url", &server.ws_url()])
            .args(["--token", &server.user_token(user)])
            .args(["--room", room])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the aiortc peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Aiortc {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits for the first event that `f` accepts, among those seen already
    /// or to come (all events are kept).
    async fn wait(&mut self, what: &str, timeout: Duration, f: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| f(v)) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if f(&v) {
                        return v;
                    }
                }
                Ok(None) => panic!("aiortc peer exited before {what}; events: {:?}", self.seen),
                Err(_) => panic!("timed out waiting for {what}; events: {:?}", self.seen),
            }
        }
    }

    fn of(&self, event: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == event).collect()
    }

    async fn finish(mut self) -> Value {
        let done = self
            .wait("done", Duration::from_secs(60), |v| v["event"] == "done")
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        done
    }
}

fn packets(v: &Value, track: &str) -> u64 {
    v["inbound"][track].as_u64().unwrap_or(0)
}

/// aiortc as the subscriber of a webrtc-rs publisher: both tracks arrive,
/// the server's ICE credentials never change, the probator never shows up as
/// a track, and `cycles` unsubscribe/subscribe cycles on the one
/// PeerConnection each bring the media back on fresh sections. `prepare`:
/// the client offers first (`subscribe-prepare`), else the seed-001 flow.
async fn aiortc_subscriber(room: &str, prepare: bool, cycles: u32) {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let publisher = Driver::join(&server, "42", room, Options::default()).await;
    let cycles_arg = cycles.to_string();
    let mut args = vec![
        "--publisher",
        "42",
        "--cycles",
        &cycles_arg,
        "--seconds",
        "250",
    ];
    if prepare {
        args.push("--prepare");
    }
    let mut peer = Aiortc::spawn(&server, "subscribe", "7", room, &args);
    let (video, audio) = (publisher.video_track.clone(), publisher.audio_track.clone());
    let media = peer
        .wait("media on both tracks", Duration::from_secs(30), |v| {
            v["event"] == "media"
        })
        .await;
    assert!(
        packets(&media, &video) > 50 && packets(&media, &audio) > 50,
        "{media}"
    );
    let last = peer
        .wait("the cycles", Duration::from_secs(200), |v| {
            v["event"] == "cycles-done" || (v["event"] == "cycle" && v["ok"] == false)
        })
        .await;
    assert_eq!(
        last["event"],
        "cycles-done",
        "a cycle lost the media: {:?}",
        peer.of("cycle")
    );
    let secs: Vec<f64> = peer
        .of("cycle")
        .iter()
        .filter_map(|c| c["seconds"].as_f64())
        .collect();
    println!("aiortc ({room}): {cycles} unsubscribe/subscribe cycles, seconds each: {secs:?}");
    let mut ufrags: Vec<&str> = peer
        .of("prepared")
        .iter()
        .filter_map(|v| v["ufrag"].as_str())
        .collect();
    ufrags.extend(peer.of("offer").iter().filter_map(|v| v["ufrag"].as_str()));
    let want = 2 * (cycles as usize + 1) + usize::from(prepare);
    assert!(
        ufrags.len() >= want,
        "two offers per subscription: {ufrags:?}"
    );
    assert!(
        ufrags.iter().all(|u| *u == ufrags[0]),
        "the server changed its ICE credentials: {ufrags:?}"
    );
    let errors = peer.of("error");
    // Every resubscription races its own unsubscribe at most; nothing else.
    assert!(
        errors.iter().all(|e| e["code"] == "bad-request"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("already subscribed"))),
        "{errors:?}"
    );
    publisher.close().await;
    let done = peer.finish().await;
    let tracks = done["tracks"].as_object().expect("tracks");
    assert!(
        tracks.keys().all(|id| id == &video || id == &audio),
        "a track other than the publisher's reached aiortc (the probator?): {tracks:?}"
    );
    server.stop().await;
}

/// The seed-001 flow (the server offers first), with 20 cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_subscriber_seed_flow_and_twenty_cycles() {
    aiortc_subscriber("aiortc-seed", false, 20).await;
}

/// The prepared flow (`subscribe-prepare` with one data channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_subscriber_prepared_flow() {
    aiortc_subscriber("aiortc-prepared", true, 5).await;
}

/// aiortc publishes (its own encoder, its own SDP and header-extension ids);
/// a webrtc-rs subscriber receives both tracks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publisher_reaches_a_webrtc_rs_subscriber() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let room = "aiortc-pub";
    let mut peer = Aiortc::spawn(&server, "publish", "99", room, &["--seconds", "40"]);
    let ids = peer
        .wait("track ids", Duration::from_secs(10), |v| {
            v["event"] == "tracks"
        })
        .await;
    let (audio, video) = (
        ids["audio"].as_str().unwrap().to_owned(),
        ids["video"].as_str().unwrap().to_owned(),
    );
    peer.wait("publish answer", Duration::from_secs(15), |v| {
        v["event"] == "published"
    })
    .await;
    let sub = Driver::join(&server, "sub", room, Options::subscriber()).await;
    sub.wait_new_publisher("99", 2).await;
    sub.subscribe("99");
    for t in [&audio, &video] {
        assert!(
            sub.subscriber
                .wait_for_packets(t, 30, Duration::from_secs(20))
                .await,
            "no media from aiortc on {t}: {:?} errors {:?}",
            sub.subscriber.stats(),
            sub.errors()
        );
    }
    sub.assert_no_server_ice_restart();
    assert!(sub.errors().is_empty(), "{:?}", sub.errors());
    sub.close().await;
    drop(peer);
    server.stop().await;
}
