//! The event stream: a monitor sees a scripted session's join, publish and
//! leave in order; a room filter; a monitor that stops reading is dropped
//! while the session goes on.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::common::driver::{Driver, Options};
use crate::common::{join, media_slot, require_test_network, TestServer, T};
use crate::support::{admin_token, monitor, next_event, Monitor};

/// (type, participantId, number of tracks) of an event.
fn summary(v: &Value) -> (String, String, usize) {
    (
        v["type"].as_str().unwrap_or("").to_owned(),
        v["participantId"].as_str().unwrap_or("").to_owned(),
        v["tracks"].as_array().map_or(0, Vec::len),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_sees_join_publish_and_leave_in_order() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let token = admin_token(&server);
    let mut all = monitor(server.addr, &token, "room=stage&stats=0").await;
    let mut elsewhere = monitor(server.addr, &token, "room=other&stats=0").await;

    let p = Driver::join(&server, "pub", "stage", Options::default()).await;
    let s = Driver::join(&server, "sub", "stage", Options::subscriber()).await;
    s.wait_new_publisher("pub", 2).await;
    s.close().await;
    p.close().await;

    let mut seen = Vec::new();
    loop {
        let e = next_event(&mut all, T).await.expect("stream open");
        assert_eq!(e["room"], "stage", "{e}");
        assert_eq!(e["node"], server.config.node_id.as_str(), "{e}");
        assert!(e["ts"].as_u64().is_some_and(|t| t > 0), "{e}");
        let done = e["type"] == "room-closed";
        seen.push(summary(&e));
        if done {
            break;
        }
    }
    let s = |t: &str, p: &str, n: usize| (t.to_owned(), p.to_owned(), n);
    // The tracks of pub arrive one at a time or together: one or two
    // `tracks-published`, the last with both.
    let published: Vec<_> = seen
        .iter()
        .filter(|e| e.0 == "tracks-published")
        .cloned()
        .collect();
    assert!(
        matches!(published.len(), 1 | 2)
            && published.last() == Some(&s("tracks-published", "pub", 2)),
        "{seen:?}"
    );
    // sub joins while pub's tracks are on their way: its join may come
    // before, between or after the `tracks-published` events, but after
    // pub's join and before its own leave.
    let sub_joined = s("participant-joined", "sub", 0);
    let at = |e: &(String, String, usize)| seen.iter().position(|x| x == e);
    let (Some(sub_at), Some(pub_at), Some(sub_left_at)) = (
        at(&sub_joined),
        at(&s("participant-joined", "pub", 0)),
        at(&s("participant-left", "sub", 0)),
    ) else {
        panic!("joins and leaves missing: {seen:?}");
    };
    assert!(pub_at < sub_at && sub_at < sub_left_at, "{seen:?}");
    let mut expected = vec![s("room-opened", "", 0), s("participant-joined", "pub", 0)];
    expected.extend(published.iter().cloned());
    expected.extend([
        s("participant-left", "sub", 0),
        s("tracks-unpublished", "pub", 0),
        s("participant-left", "pub", 0),
        s("room-closed", "", 0),
    ]);
    let without_sub_join: Vec<_> = seen.iter().filter(|e| **e != sub_joined).cloned().collect();
    assert_eq!(without_sub_join, expected, "{seen:?}");

    // The other monitor heard nothing of "stage": its first event is from
    // the room it asked for.
    let mut c = server.connect("cat").await;
    assert_eq!(join(&mut c, "other").await["type"], "joined");
    let e = next_event(&mut elsewhere, T).await.expect("stream open");
    assert_eq!(
        (e["type"].as_str(), e["room"].as_str()),
        (Some("room-opened"), Some("other")),
        "{e}"
    );
    server.stop().await;
}

/// Reads `m` until a frame matches `pred` (room events and stats alike).
async fn wait_for(m: &mut Monitor, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, m.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                if pred(&v) {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no {what}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_monitor_that_stops_reading_is_dropped_and_the_session_goes_on() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval = Duration::from_millis(200);
        c.limits.pong_timeout = Duration::from_secs(3);
    })
    .await;
    let token = admin_token(&server);
    let mut reader = monitor(server.addr, &token, "stats=1").await;
    let mut stalled = monitor(server.addr, &token, "stats=0").await;
    wait_for(&mut reader, "stats with two monitors", |v| {
        v["type"] == "node-stats" && v["monitors"] == 2
    })
    .await;

    // From here on `stalled` is not read. The session goes on: ann joins
    // and leaves rooms, every step is answered and reaches `reader`, until
    // the stats say one monitor is left.
    let mut ann = server.connect("ann").await;
    let started = Instant::now();
    for i in 0.. {
        let room = format!("room-{i}");
        assert_eq!(join(&mut ann, &room).await["type"], "joined");
        wait_for(&mut reader, "room-opened", |v| {
            v["type"] == "room-opened" && v["room"] == room.as_str()
        })
        .await;
        ann.send_raw(&format!(r#"{{"type":"leave","roomName":"{room}"}}"#))
            .await
            .expect("leave");
        ann.wait_type("left", T).await.expect("left");
        let stats = wait_for(&mut reader, "node-stats", |v| v["type"] == "node-stats").await;
        if stats["monitors"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < 2 * T,
            "the stalled monitor was not dropped: {stats}"
        );
    }
    // ann never noticed.
    ann.send_raw(r#"{"type":"ping"}"#).await.expect("ping");
    ann.wait_type("pong", T).await.expect("pong");
    // The stalled monitor, read again, finds what was queued for it before
    // the drop, then the end of its stream.
    let mut frames = 0;
    while next_event(&mut stalled, T).await.is_some() {
        frames += 1;
        assert!(frames < 1000, "the stalled monitor's stream does not end");
    }
    server.stop().await;
}
