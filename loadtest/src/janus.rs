//! Minimal Janus (1.1.x) WebSocket API client for the VideoRoom plugin.
//!
//! One [`JanusSession`] = one WebSocket (subprotocol `janus-protocol`) + one
//! Janus session, with a keepalive task, transaction routing and event
//! dispatch. It speaks plain SDP strings and does not depend on any WebRTC
//! stack. SDPs given to it must be complete (ICE gathering finished,
//! candidates inside the SDP): they are sent with `"trickle": false`, so Janus
//! does not wait for trickled candidates. Janus itself runs half-trickle by
//! default, so its own SDPs contain its candidates.
//!
//! Depends on: tokio, tokio-tungstenite (0.28), futures-util, serde_json,
//! anyhow, rand, tracing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OnceCell};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Timeout of every request/response exchange with Janus.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of the session keepalive (Janus' default session_timeout is 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);

const PLUGIN: &str = "janus.plugin.videoroom";
/// VideoRoom error code for "room already exists".
const ERR_ROOM_EXISTS: i64 = 427;

/// Result of [`JanusSession::publish`].
#[derive(Clone, Debug)]
pub struct Published {
    /// Our own feed (publisher) id in the room.
    pub feed_id: u64,
    /// Janus's SDP answer to our offer.
    pub answer_sdp: String,
    /// Publishers (with media) already in the room when we joined.
    pub existing_feeds: Vec<u64>,
    /// Handle id of the publisher handle.
    pub handle: u64,
}

/// Events dispatched to [`JanusSession::take_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JanusEvent {
    /// A publisher started publishing in the room (from a "publishers" list).
    Joined(u64),
    /// A publisher stopped publishing or left ("unpublished" / "leaving").
    Left(u64),
    /// The PeerConnection of one of our handles is up (DTLS done).
    WebrtcUp { handle: u64 },
    /// The PeerConnection of one of our handles went down.
    Hangup { handle: u64, reason: String },
    /// Janus started/stopped receiving media of a kind on a handle.
    Media {
        handle: u64,
        kind: String,
        mid: Option<String>,
        receiving: bool,
    },
    /// Janus renegotiates a subscriber handle on its own (e.g. "updated"
    /// after a publisher we subscribed to left): answer `sdp` with
    /// [`JanusSession::start`].
    Offer { handle: u64, sdp: String },
    /// The handle was detached by Janus, or the session timed out
    /// (`handle` is 0 then).
    Gone { handle: u64, reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `ack` ends the exchange (keepalive, trickle).
    Ack,
    /// `success` ends it (create/attach/detach/destroy, sync plugin requests).
    Success,
    /// `ack`, then an `event` with the same transaction (async plugin requests).
    Event,
}

type Pending = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>>;

struct Inner {
    session_id: u64,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    /// Handle used for room management (create/exists/listparticipants).
    control: OnceCell<u64>,
    /// Every handle we attached (for close()).
    handles: Mutex<Vec<u64>>,
}

/// One participant's connection to Janus (one WebSocket, one session).
pub struct JanusSession {
    inner: Arc<Inner>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<JanusEvent>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn new_transaction() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Turns a Janus core error or a plugin error into an `Err`.
fn check_errors(msg: &Value) -> Result<()> {
    if msg.get("janus").and_then(Value::as_str) == Some("error") {
        let code = msg.pointer("/error/code").and_then(Value::as_i64);
        let reason = msg
            .pointer("/error/reason")
            .and_then(Value::as_str)
            .unwrap_or("?");
        bail!("janus error {}: {reason}", code.unwrap_or(-1));
    }
    if let Some(data) = msg.pointer("/plugindata/data") {
        if let Some(code) = data.get("error_code").and_then(Value::as_i64) {
            let reason = data.get("error").and_then(Value::as_str).unwrap_or("?");
            bail!("videoroom error {code}: {reason}");
        }
    }
    Ok(())
}

fn plugin_data(msg: &Value) -> Result<&Value> {
    msg.pointer("/plugindata/data")
        .ok_or_else(|| anyhow!("janus reply without plugindata: {msg}"))
}

fn jsep_sdp(msg: &Value, want_type: &str) -> Result<String> {
    let jsep = msg
        .get("jsep")
        .ok_or_else(|| anyhow!("janus reply without jsep (expected {want_type})"))?;
    let ty = jsep.get("type").and_then(Value::as_str).unwrap_or("");
    if ty != want_type {
        bail!("janus jsep type {ty:?}, expected {want_type:?}");
    }
    jsep.get("sdp")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("janus jsep without sdp"))
}

/// Feed ids of a "publishers" array (entries `{ "id": .., ... }`).
fn feed_ids(list: Option<&Value>) -> Vec<u64> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("id").and_then(as_u64))
                .collect()
        })
        .unwrap_or_default()
}

/// Translates an unsolicited message into zero or more [`JanusEvent`]s.
fn events_of(msg: &Value) -> Vec<JanusEvent> {
    let handle = msg.get("sender").and_then(as_u64).unwrap_or(0);
    let mut out = Vec::new();
    match msg.get("janus").and_then(Value::as_str).unwrap_or("") {
        "event" => {
            if let Some(data) = msg.pointer("/plugindata/data") {
                for id in feed_ids(data.get("publishers")) {
                    out.push(JanusEvent::Joined(id));
                }
                if let Ok(sdp) = jsep_sdp(msg, "offer") {
                    out.push(JanusEvent::Offer { handle, sdp });
                }
                for key in ["unpublished", "leaving"] {
                    // "ok" (a string) means it is about ourselves: ignore.
                    if let Some(id) = data.get(key).and_then(|v| v.as_u64()) {
                        out.push(JanusEvent::Left(id));
                    }
                }
            }
        }
        "webrtcup" => out.push(JanusEvent::WebrtcUp { handle }),
        "hangup" => out.push(JanusEvent::Hangup {
            handle,
            reason: msg
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        }),
        "media" => out.push(JanusEvent::Media {
            handle,
            kind: msg
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            mid: msg.get("mid").and_then(Value::as_str).map(str::to_owned),
            receiving: msg
                .get("receiving")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        "detached" => out.push(JanusEvent::Gone {
            handle,
            reason: "detached".into(),
        }),
        "timeout" => out.push(JanusEvent::Gone {
            handle: 0,
            reason: "session timeout".into(),
        }),
        _ => {}
    }
    out
}

impl Inner {
    /// Sends `body` (a Janus API message without transaction/session) and
    /// waits for the reply selected by `expect`, failing on Janus errors,
    /// a closed socket or after [`REQUEST_TIMEOUT`].
    async fn request(&self, mut body: Value, expect: Expect) -> Result<Value> {
        if self.closed.load(Ordering::Relaxed) {
            bail!("janus connection closed");
        }
        let tx_id = new_transaction();
        let what = body
            .get("janus")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let req = body
            .pointer("/body/request")
            .and_then(Value::as_str)
            .map(|r| format!("{what}/{r}"))
            .unwrap_or_else(|| what.clone());
        body["transaction"] = json!(tx_id);
        if self.session_id != 0 && body.get("session_id").is_none() {
            body["session_id"] = json!(self.session_id);
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tx_id.clone(), tx);
        let result = async {
            self.out
                .send(Message::Text(body.to_string().into()))
                .map_err(|_| anyhow!("janus connection closed"))?;
            loop {
                let msg = rx
                    .recv()
                    .await
                    .ok_or_else(|| anyhow!("janus connection closed"))?;
                check_errors(&msg)?;
                match (msg.get("janus").and_then(Value::as_str), expect) {
                    (Some("ack"), Expect::Ack) => return Ok::<Value, anyhow::Error>(msg),
                    (Some("ack"), _) => continue,
                    (Some("success"), Expect::Success | Expect::Ack) => return Ok(msg),
                    (Some("event"), Expect::Event) => return Ok(msg),
                    (Some("success"), Expect::Event) => return Ok(msg),
                    (other, _) => {
                        tracing::debug!("janus: ignoring {other:?} for {req}");
                        continue;
                    }
                }
            }
        };
        let r = tokio::time::timeout(REQUEST_TIMEOUT, result).await;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tx_id);
        match r {
            Ok(r) => r.with_context(|| format!("janus {req}")),
            Err(_) => Err(anyhow!("janus {req}: no reply within {REQUEST_TIMEOUT:?}")),
        }
    }

    async fn attach(&self) -> Result<u64> {
        let r = self
            .request(
                json!({"janus": "attach", "plugin": PLUGIN}),
                Expect::Success,
            )
            .await?;
        let h = r
            .pointer("/data/id")
            .and_then(as_u64)
            .ok_or_else(|| anyhow!("attach reply without handle id: {r}"))?;
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h);
        Ok(h)
    }

    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        expect: Expect,
    ) -> Result<Value> {
        let mut m = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.request(m, expect).await
    }

    async fn control(&self) -> Result<u64> {
        self.control
            .get_or_try_init(|| self.attach())
            .await
            .copied()
    }
}

impl JanusSession {
    /// Connects to Janus (e.g. `ws://127.0.0.1:8188/`) and creates a session.
    pub async fn connect(ws_url: &str) -> Result<JanusSession> {
        let mut req = ws_url
            .into_client_request()
            .with_context(|| format!("bad janus url {ws_url}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| anyhow!("janus websocket connect to {ws_url} timed out"))?
            .with_context(|| format!("janus websocket connect to {ws_url}"))?;
        let (mut sink, mut stream) = ws.split();

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));

        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let is_close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || is_close {
                    break;
                }
            }
            let _ = sink.close().await;
        });

        let reader = {
            let pending = pending.clone();
            let closed = closed.clone();
            let out_tx = out_tx.clone();
            tokio::spawn(async move {
                while let Some(m) = stream.next().await {
                    let text = match m {
                        Ok(Message::Text(t)) => t.to_string(),
                        Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                        Ok(Message::Ping(p)) => {
                            let _ = out_tx.send(Message::Pong(p));
                            continue;
                        }
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => continue,
                    };
                    let msg: Value = match serde_json::from_str(&text) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!("janus: unparsable message ({e}): {text:.200}");
                            continue;
                        }
                    };
                    let tx = msg
                        .get("transaction")
                        .and_then(Value::as_str)
                        .and_then(|t| {
                            pending
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(t)
                                .cloned()
                        });
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(msg);
                        }
                        None => {
                            for ev in events_of(&msg) {
                                let _ = ev_tx.send(ev);
                            }
                        }
                    }
                }
                closed.store(true, Ordering::Relaxed);
                // Dropping the senders wakes every waiting request.
                pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
            })
        };

        let mut inner = Inner {
            session_id: 0,
            out: out_tx,
            pending,
            closed,
            control: OnceCell::new(),
            handles: Mutex::new(Vec::new()),
        };
        let created = inner
            .request(json!({"janus": "create"}), Expect::Success)
            .await;
        let session_id = match created.and_then(|r| {
            r.pointer("/data/id")
                .and_then(as_u64)
                .ok_or_else(|| anyhow!("create reply without session id: {r}"))
        }) {
            Ok(id) => id,
            Err(e) => {
                reader.abort();
                writer.abort();
                return Err(e);
            }
        };
        inner.session_id = session_id;
        let inner = Arc::new(inner);

        let keepalive = {
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(KEEPALIVE_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    if inner.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(e) = inner
                        .request(json!({"janus": "keepalive"}), Expect::Ack)
                        .await
                    {
                        tracing::warn!("janus keepalive: {e:#}");
                    }
                }
            })
        };

        Ok(JanusSession {
            inner,
            events_rx: Mutex::new(Some(ev_rx)),
            tasks: vec![reader, writer, keepalive],
        })
    }

    /// The Janus session id.
    pub fn session_id(&self) -> u64 {
        self.inner.session_id
    }

    /// Creates the VideoRoom room if it does not exist (VP8 video, Opus audio,
    /// up to `max_publishers` publishers, no bitrate cap, no recording, not
    /// permanent). Idempotent; concurrent calls from many sessions succeed.
    pub async fn ensure_room(&self, room: u64, max_publishers: u32) -> Result<()> {
        let h = self.inner.control().await?;
        let r = self
            .inner
            .message(
                h,
                json!({"request": "exists", "room": room}),
                None,
                Expect::Success,
            )
            .await?;
        if plugin_data(&r)?.get("exists").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        let body = json!({
            "request": "create",
            "room": room,
            "description": format!("loadtest-{room}"),
            "publishers": max_publishers,
            "bitrate": 0,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "record": false,
            "permanent": false,
            "is_private": false,
        });
        match self.inner.message(h, body, None, Expect::Success).await {
            Ok(_) => Ok(()),
            // Created concurrently by someone else.
            Err(e) if format!("{e:#}").contains(&format!("error {ERR_ROOM_EXISTS}:")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Attaches a publisher handle, joins `room` as publisher `display`,
    /// sends `configure` with `offer_sdp` and returns Janus's answer, our feed
    /// id and the feeds already publishing in the room.
    pub async fn publish(&self, room: u64, display: &str, offer_sdp: &str) -> Result<Published> {
        let h = self.inner.attach().await?;
        let joined = self
            .inner
            .message(
                h,
                json!({"request": "join", "ptype": "publisher", "room": room, "display": display}),
                None,
                Expect::Event,
            )
            .await?;
        let data = plugin_data(&joined)?;
        if data.get("videoroom").and_then(Value::as_str) != Some("joined") {
            bail!("janus publisher join: unexpected reply {data}");
        }
        let feed_id = data
            .get("id")
            .and_then(as_u64)
            .ok_or_else(|| anyhow!("joined without id: {data}"))?;
        let existing_feeds = feed_ids(data.get("publishers"));
        let r = self
            .inner
            .message(
                h,
                json!({"request": "configure"}),
                Some(json!({"type": "offer", "sdp": offer_sdp, "trickle": false})),
                Expect::Event,
            )
            .await?;
        let answer_sdp = jsep_sdp(&r, "answer").context("janus publisher configure")?;
        Ok(Published {
            feed_id,
            answer_sdp,
            existing_feeds,
            handle: h,
        })
    }

    /// Joins `room` as a multistream subscriber to every stream of `feeds` on
    /// a new handle; returns the handle id and Janus's SDP offer.
    pub async fn subscribe(&self, room: u64, feeds: &[u64]) -> Result<(u64, String)> {
        let h = self.inner.attach().await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let r = self
            .inner
            .message(
                h,
                json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams}),
                None,
                Expect::Event,
            )
            .await?;
        let offer = jsep_sdp(&r, "offer").context("janus subscriber join")?;
        Ok((h, offer))
    }

    /// Sends `start` with our SDP answer (also used to answer the offers
    /// returned by [`add_feeds`](Self::add_feeds)).
    pub async fn start(&self, handle: u64, answer_sdp: &str) -> Result<()> {
        self.inner
            .message(
                handle,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer_sdp, "trickle": false})),
                Expect::Event,
            )
            .await?;
        Ok(())
    }

    /// Adds every stream of `feeds` to an existing subscriber handle
    /// (multistream `subscribe`); returns Janus's new offer, to be answered
    /// with [`start`](Self::start).
    pub async fn add_feeds(&self, handle: u64, feeds: &[u64]) -> Result<String> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let r = self
            .inner
            .message(
                handle,
                json!({"request": "subscribe", "streams": streams}),
                None,
                Expect::Event,
            )
            .await?;
        jsep_sdp(&r, "offer").context("janus subscriber subscribe")
    }

    /// Removes every stream of `feeds` from a subscriber handle; returns
    /// Janus's new offer (answer it with [`start`](Self::start)), if any.
    pub async fn remove_feeds(&self, handle: u64, feeds: &[u64]) -> Result<Option<String>> {
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let r = self
            .inner
            .message(
                handle,
                json!({"request": "unsubscribe", "streams": streams}),
                None,
                Expect::Event,
            )
            .await?;
        Ok(jsep_sdp(&r, "offer").ok())
    }

    /// Takes the event receiver (once; `None` afterwards).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<JanusEvent>> {
        self.events_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Joins `room` as a publisher that never publishes, so that this session
    /// receives the room's publisher Joined/Left events without sending
    /// media (for subscribe-only participants). Returns the handle id.
    pub async fn watch_room(&self, room: u64, display: &str) -> Result<u64> {
        let h = self.inner.attach().await?;
        self.inner
            .message(
                h,
                json!({"request": "join", "ptype": "publisher", "room": room, "display": display}),
                None,
                Expect::Event,
            )
            .await?;
        Ok(h)
    }

    /// Feed ids of the participants of `room` that are currently publishing.
    pub async fn list_publishers(&self, room: u64) -> Result<Vec<u64>> {
        let h = self.inner.control().await?;
        let r = self
            .inner
            .message(
                h,
                json!({"request": "listparticipants", "room": room}),
                None,
                Expect::Success,
            )
            .await?;
        let data = plugin_data(&r)?;
        Ok(data
            .get("participants")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|p| p.get("publisher").and_then(Value::as_bool) == Some(true))
                    .filter_map(|p| p.get("id").and_then(as_u64))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Detaches all handles, destroys the session and closes the socket.
    /// Best effort, bounded by [`REQUEST_TIMEOUT`] per request.
    pub async fn close(mut self) {
        let handles: Vec<u64> = self
            .inner
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            if let Err(e) = self
                .inner
                .request(json!({"janus": "detach", "handle_id": h}), Expect::Success)
                .await
            {
                tracing::debug!("janus detach {h}: {e:#}");
            }
        }
        if let Err(e) = self
            .inner
            .request(json!({"janus": "destroy"}), Expect::Success)
            .await
        {
            tracing::debug!("janus destroy: {e:#}");
        }
        let _ = self.inner.out.send(Message::Close(None));
        // Give the writer a moment to send the close frame.
        let mut tasks = std::mem::take(&mut self.tasks);
        if let Some(writer) = tasks.get_mut(1) {
            let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
        }
        for t in tasks {
            t.abort();
        }
    }
}

impl Drop for JanusSession {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
