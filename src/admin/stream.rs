//! `GET /admin/v1/events`: a WebSocket that streams this node's room events
//! (one JSON object per text frame) and its stats every few seconds, for
//! monitors.
//!
//! A monitor never slows the SFU: the rooms publish on a broadcast channel
//! that never waits ([`crate::room::events`]), and each monitor has a
//! bounded queue to its socket. A monitor is dropped (its socket closed at
//! once, queued frames and all) when it falls behind: it lagged on the
//! channel, its queue is full, a write takes longer than
//! `WRITE_TIMEOUT_SECS`, or it answered no WebSocket ping within the pong
//! timeout (a client that stops reading stops answering pings, even while
//! the kernel's buffers still take what is sent).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use warp::ws::{Message, WebSocket, Ws};
use warp::Reply;

use super::ApiError;
use crate::room::events::now_ms;
use crate::AppState;

/// Frames queued to one monitor.
const QUEUE: usize = 256;
/// Stats interval unless `?stats=` says otherwise.
const DEFAULT_STATS: Duration = Duration::from_secs(5);
/// The longest stats interval a monitor may ask for.
const MAX_STATS_SECS: u64 = 3600;

/// What one monitor asked for.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    room: Option<String>,
    stats: Option<Duration>,
}

fn filter(query: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let room = match query.get("room") {
        Some(r) => {
            signaling::validate_room_name(r).map_err(|e| ApiError::bad("bad-room-name", e))?;
            Some(r.clone())
        }
        None => None,
    };
    let stats = match query.get("stats") {
        None => Some(DEFAULT_STATS),
        Some(s) => match s.parse::<u64>() {
            Ok(0) => None,
            Ok(n) if n <= MAX_STATS_SECS => Some(Duration::from_secs(n)),
            _ => {
                return Err(ApiError::bad(
                    "bad-stats",
                    format!("stats is a number of seconds, 0 (none) to {MAX_STATS_SECS}"),
                ))
            }
        },
    };
    Ok(Filter { room, stats })
}

/// Upgrades an authorized request to the event stream.
pub(super) fn upgrade(
    ws: Ws,
    query: HashMap<String, String>,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, ApiError> {
    let f = filter(&query)?;
    Ok(ws
        // Monitors send nothing but control frames.
        .max_message_size(4096)
        .on_upgrade(move |socket| run(socket, f, state))
        .into_response())
}

/// The node's stats as one event.
fn stats(state: &AppState) -> Value {
    let c = state.rooms.counts();
    let limit = state.config.limits.max_connections;
    json!({
        "type": "node-stats",
        "node": state.config.node_id,
        "ts": now_ms(),
        "rooms": c.rooms,
        "participants": c.participants,
        "publishers": c.publishers,
        "tracks": c.tracks,
        "forwardedTracks": c.forwarded_tracks,
        "forwardLimit": c.forward_limit,
        "connections": limit.saturating_sub(state.connections.available_permits()),
        "monitors": state.rooms.events().listeners(),
        "draining": *state.draining.borrow(),
    })
}

async fn run(socket: WebSocket, f: Filter, state: Arc<AppState>) {
    let mut events = state.rooms.events().subscribe();
    let node = state.config.node_id.clone();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let write_timeout = state.config.limits.write_timeout;
    let mut writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match tokio::time::timeout(write_timeout, sink.send(m)).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
        Some(sink)
    });
    // The first frame: the monitor hears every event from here on.
    let hello = json!({ "type": "subscribed", "node": node, "room": f.room, "ts": now_ms() });
    let _ = tx.try_send(Message::text(hello.to_string()));
    let limits = &state.config.limits;
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    // Without stats the branch is disabled; the period only has to be valid.
    let mut stats_tick =
        tokio::time::interval(f.stats.unwrap_or(Duration::from_secs(MAX_STATS_SECS)));
    let mut last_pong = Instant::now();
    let mut draining = state.draining.clone();
    let why: &str = loop {
        let frame = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if f.room.as_deref().is_some_and(|r| r != ev.event.room()) {
                        continue;
                    }
                    let mut v = match serde_json::to_value(&*ev) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    v["node"] = json!(node);
                    Message::text(v.to_string())
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "event monitor fell behind; dropping it");
                    break "lagged";
                }
                Err(broadcast::error::RecvError::Closed) => break "server stopping",
            },
            _ = stats_tick.tick(), if f.stats.is_some() => Message::text(stats(&state).to_string()),
            _ = ping.tick() => {
                if last_pong.elapsed() > limits.pong_timeout {
                    tracing::info!("event monitor answered no ping; dropping it");
                    break "no pong";
                }
                Message::ping(Vec::<u8>::new())
            }
            _ = async { draining.wait_for(|d| *d).await.map(|_| ()) } => {
                let _ = tx.try_send(Message::close_with(signaling::close::GOING_AWAY, "server shutting down"));
                break "draining";
            }
            _ = tx.closed() => break "write failed",
            m = stream.next() => match m {
                Some(Ok(m)) if m.is_pong() => { last_pong = Instant::now(); continue; }
                Some(Ok(m)) if m.is_close() => break "closed by the monitor",
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break "closed by the monitor",
            },
        };
        if tx.try_send(frame).is_err() {
            tracing::info!("event monitor's queue is full; dropping it");
            break "queue full";
        }
    };
    tracing::debug!(reason = why, "event monitor ended");
    drop(events);
    drop(tx);
    if why == "draining" || why == "closed by the monitor" {
        // Let the queued frames (and a close frame) go out, bounded.
        if let Ok(Ok(Some(mut sink))) =
            tokio::time::timeout(Duration::from_secs(1), &mut writer).await
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
        }
    }
    // A dropped monitor: its socket goes now, whatever is still queued.
    writer.abort();
    let _ = writer.await;
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            filter(&q(&[])).unwrap(),
            Filter {
                room: None,
                stats: Some(DEFAULT_STATS)
            }
        );
        let f = filter(&q(&[("room", "a"), ("stats", "0")])).unwrap();
        assert_eq!((f.room.as_deref(), f.stats), (Some("a"), None));
        assert_eq!(filter(&q(&[("stats", "x")])).unwrap_err().code, "bad-stats");
        assert_eq!(
            filter(&q(&[("room", "")])).unwrap_err().code,
            "bad-room-name"
        );
    }
}
