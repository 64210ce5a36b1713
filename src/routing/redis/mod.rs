//! Cluster mode: links between nodes over Redis pub/sub.
//!
//! A client may connect to any node (the *edge*). When its room is held by
//! another node (the *owner*), the edge opens a *remote session* on the
//! owner and from then on passes the client's frames to it and the owner's
//! frames back; media goes directly between the client and the owner (the
//! owner's SDP carries the owner's candidates).
//!
//! Each node listens on its own channel (`P:chan:{node}`). Messages are JSON
//! [`NodeMsg`]s tagged with a session key (`{edge node}/{session id}`) and,
//! for frames, a per-direction sequence number: a duplicate (Redis publish
//! retried after a broken connection) is dropped, a gap ends the session with
//! `reconnect`. Both sides check every third of `NODE_TTL_MS` that the peer
//! node is still in the registry; when it is gone, the edge tells its client
//! `reconnect` (`owner-lost`) and the owner ends the remote session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod wire;

pub use wire::{decode, order_frame, FrameOrder, NodeMsg};

use super::{Call, CallError, Inbound, Incoming, Link, LinkSink, Router};
use crate::auth::Grants;
use crate::cluster::store::{subscribe_node_channel, RedisStore};
use crate::cluster::{every, lock};

/// Frames queued per forwarded session in either direction.
pub const SESSION_QUEUE: usize = 1024;
/// Messages waiting to be published by this node. When Redis is slow or
/// away the queue fills and further messages are dropped; the receiving
/// side sees the sequence gap and ends those sessions with `reconnect`.
const OUTBOX: usize = 8192;
/// Requests from other nodes waiting for this node's handler; more are
/// answered "busy" at once.
const CALLS: usize = 64;
/// Longest this node takes to answer a call before it says so.
const CALL_ANSWER: Duration = Duration::from_secs(10);

struct Route {
    peer: String,
    tx: mpsc::Sender<Inbound>,
    next_in: u64,
}

/// Sends and routes forwarded signaling for this node.
pub struct Forwarder {
    node_id: String,
    store: RedisStore,
    routes: Mutex<HashMap<String, Route>>,
    outbox: mpsc::Sender<(String, NodeMsg)>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Calls this node made that wait for their answer, by id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<String, String>>>>,
    next_call: AtomicU64,
    /// Calls from other nodes, to this node's handler.
    calls: mpsc::Sender<Call>,
    /// How old the registry must be before a missing peer counts as gone:
    /// a node TTL (three liveness periods) and a second.
    registry_age: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The [`Router`] of cluster mode: links are sessions of the
/// [`Forwarder`], keyed `{client's node}/{session id}`.
#[derive(Debug)]
pub struct RedisRouter {
    fwd: Arc<Forwarder>,
    incoming: Mutex<Option<mpsc::Receiver<Incoming>>>,
    calls: Mutex<Option<mpsc::Receiver<Call>>>,
}

impl RedisRouter {
    /// Starts listening on this node's channel (`{prefix}:chan:{node}`);
    /// peers are checked for liveness every `liveness_period`.
    pub fn start(
        node_id: &str,
        store: RedisStore,
        redis_url: &str,
        prefix: &str,
        liveness_period: Duration,
    ) -> RedisRouter {
        let (fwd, incoming, calls) =
            Forwarder::start(node_id, store, redis_url, prefix, liveness_period);
        RedisRouter {
            fwd,
            incoming: Mutex::new(Some(incoming)),
            calls: Mutex::new(Some(calls)),
        }
    }
}

impl Router for RedisRouter {
    fn connect(&self, session_id: u64, node: &str, grants: &Grants) -> Option<Link> {
        Some(self.fwd.open(session_id, node, grants))
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        lock(&self.incoming).take()
    }

    fn shutdown(&self) {
        self.fwd.shutdown();
    }

    fn call(
        &self,
        node: &str,
        body: String,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<String, CallError>> {
        let fwd = Arc::clone(&self.fwd);
        let node = node.to_owned();
        Box::pin(async move { fwd.call(node, body, timeout).await })
    }

    fn take_calls(&self) -> Option<mpsc::Receiver<Call>> {
        lock(&self.calls).take()
    }
}

/// One end of a forwarded session: numbers the frames it sends, and tells
/// the peer once when it ends (by [`LinkSink::close`] or by being dropped).
struct RedisLink {
    fwd: Arc<Forwarder>,
    peer: String,
    session: String,
    seq: u64,
    closed: bool,
}

impl LinkSink for RedisLink {
    fn frame(&mut self, text: String) {
        if self.closed {
            return;
        }
        self.fwd.send(
            &self.peer,
            NodeMsg::Frame {
                session: self.session.clone(),
                seq: self.seq,
                text,
            },
        );
        crate::metrics::forwarded_frame("out");
        self.seq += 1;
    }

    fn close(&mut self, code: Option<u16>, reason: &str) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        // A route already gone was ended by the peer (or the peer is
        // gone): there is nobody to tell.
        if lock(&self.fwd.routes).remove(&self.session).is_none() {
            return;
        }
        self.fwd.send(
            &self.peer,
            NodeMsg::Close {
                session: self.session.clone(),
                code,
                reason: reason.to_owned(),
            },
        );
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.close(None, "session ended");
    }
}

impl Forwarder {
    /// Starts listening on this node's channel. Sessions that peers open
    /// arrive on the returned receiver.
    fn start(
        node_id: &str,
        store: RedisStore,
        redis_url: &str,
        prefix: &str,
        liveness_period: Duration,
    ) -> (
        Arc<Forwarder>,
        mpsc::Receiver<Incoming>,
        mpsc::Receiver<Call>,
    ) {
        // Publishing happens in one task, in order: Redis keeps the order of
        // one connection's publishes, so frames arrive in sequence.
        let (outbox, mut out_rx) = mpsc::channel::<(String, NodeMsg)>(OUTBOX);
        let (calls, calls_rx) = mpsc::channel(CALLS);
        let fwd = Arc::new(Forwarder {
            node_id: node_id.to_owned(),
            store,
            routes: Mutex::new(HashMap::new()),
            outbox,
            tasks: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
            calls,
            registry_age: liveness_period * 3 + Duration::from_secs(1),
        });
        let (opens_tx, opens_rx) = mpsc::channel(256);
        let (mut payloads, _up, sub_task) = subscribe_node_channel(
            redis_url.to_owned(),
            prefix.to_owned(),
            node_id.to_owned(),
            4096,
        );
        let publisher = {
            let store = fwd.store.clone();
            tokio::spawn(async move {
                while let Some((node, msg)) = out_rx.recv().await {
                    let Ok(payload) = serde_json::to_vec(&msg) else {
                        continue;
                    };
                    if let Err(e) = store.publish(&node, &payload).await {
                        // The peer's liveness check or the sequence check
                        // ends the session; nothing to retry here.
                        tracing::debug!(%node, "forwarding failed: {e}");
                    }
                }
            })
        };
        let router = {
            let fwd = Arc::downgrade(&fwd);
            tokio::spawn(async move {
                while let Some(payload) = payloads.recv().await {
                    let Some(fwd) = fwd.upgrade() else { break };
                    match decode(&payload) {
                        Ok(msg) => fwd.route(msg, &opens_tx),
                        Err(e) => tracing::warn!("unreadable node message dropped: {e}"),
                    }
                }
            })
        };
        let liveness = every(liveness_period, &fwd, |fwd| async move {
            fwd.check_peers().await;
        });
        lock(&fwd.tasks).extend([sub_task, publisher, router, liveness]);
        (fwd, opens_rx, calls_rx)
    }

    /// Sends a call to `node` and waits for its answer.
    async fn call(
        self: Arc<Self>,
        node: String,
        body: String,
        timeout: Duration,
    ) -> Result<String, CallError> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        self.send(
            &node,
            NodeMsg::Call {
                id,
                from: self.node_id.clone(),
                body,
            },
        );
        let answer = tokio::time::timeout(timeout, rx).await;
        lock(&self.pending).remove(&id);
        match answer {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(why))) => Err(CallError::Failed { node, why }),
            // The sender went with the router (shutdown) or the time is up.
            Ok(Err(_)) | Err(_) => Err(CallError::Timeout(node)),
        }
    }

    /// A call from another node: to this node's handler, and its answer
    /// back, bounded by `CALL_ANSWER`.
    fn answer_call(self: &Arc<Self>, id: u64, from: String, body: String) {
        let (reply, rx) = oneshot::channel();
        if self.calls.try_send(Call { body, reply }).is_err() {
            let result = Err("node is busy with other admin requests".to_owned());
            self.send(&from, NodeMsg::Reply { id, result });
            return;
        }
        let fwd = Arc::downgrade(self);
        tokio::spawn(async move {
            let result = match tokio::time::timeout(CALL_ANSWER, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err("the request was dropped".to_owned()),
                Err(_) => Err("no answer in time".to_owned()),
            };
            if let Some(fwd) = fwd.upgrade() {
                fwd.send(&from, NodeMsg::Reply { id, result });
            }
        });
    }

    /// A link end for `session` with `peer`, registered to receive.
    fn link(self: &Arc<Self>, peer: &str, session: String) -> Link {
        let (tx, source) = mpsc::channel(SESSION_QUEUE);
        lock(&self.routes).insert(
            session.clone(),
            Route {
                peer: peer.to_owned(),
                tx,
                next_in: 0,
            },
        );
        let sink = RedisLink {
            fwd: Arc::clone(self),
            peer: peer.to_owned(),
            session,
            seq: 0,
            closed: false,
        };
        Link {
            sink: Box::new(sink),
            source,
        }
    }

    fn route(self: &Arc<Self>, msg: NodeMsg, opens: &mpsc::Sender<Incoming>) {
        let key = msg.session().to_owned();
        match msg {
            NodeMsg::Call { id, from, body } => self.answer_call(id, from, body),
            NodeMsg::Reply { id, result } => {
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(result);
                }
            }
            NodeMsg::Open {
                session,
                from,
                grants,
            } => {
                let open = Incoming {
                    grants,
                    link: self.link(&from, session.clone()),
                    key: session,
                };
                if let Err(e) = opens.try_send(open) {
                    // Dropping the link tells the client's node.
                    let mut link = e.into_inner().link;
                    link.sink.close(
                        Some(signaling::close::TRY_AGAIN_LATER),
                        "owner node is too busy",
                    );
                }
            }
            NodeMsg::Frame { seq, text, .. } => {
                let delivery = {
                    let mut routes = lock(&self.routes);
                    let Some(route) = routes.get_mut(&key) else {
                        return;
                    };
                    match order_frame(&mut route.next_in, seq) {
                        FrameOrder::Drop => return,
                        FrameOrder::Gap { expected, got } => {
                            let gap = format!("forwarded frames lost ({expected} to {})", got - 1);
                            Some((route.tx.clone(), Inbound::PeerLost(gap)))
                        }
                        FrameOrder::Next => {
                            crate::metrics::forwarded_frame("in");
                            Some((route.tx.clone(), Inbound::Frame(text)))
                        }
                    }
                };
                if let Some((tx, item)) = delivery {
                    if tx.try_send(item).is_err() {
                        tracing::warn!(session = %key, "forwarded session not keeping up; ending it");
                        let _ = tx.try_send(Inbound::PeerLost("too many frames queued".into()));
                    }
                }
            }
            NodeMsg::Close { code, reason, .. } => {
                if let Some(route) = lock(&self.routes).remove(&key) {
                    let _ = route.tx.try_send(Inbound::Closed { code, reason });
                }
            }
        }
    }

    /// The client's side: registers a session that relays to `owner` and
    /// sends `Open`.
    fn open(self: &Arc<Self>, session_id: u64, owner: &str, grants: &Grants) -> Link {
        let session = format!("{}/{}", self.node_id, session_id);
        let link = self.link(owner, session.clone());
        tracing::debug!(%session, %owner, "forwarding to the room's node");
        self.send(
            owner,
            NodeMsg::Open {
                session,
                from: self.node_id.clone(),
                grants: grants.clone(),
            },
        );
        link
    }

    fn send(&self, node: &str, msg: NodeMsg) {
        if self.outbox.try_send((node.to_owned(), msg)).is_err() {
            tracing::warn!(%node, "forwarding queue full; message dropped");
        }
    }

    /// Ends every session whose peer node left the registry.
    async fn check_peers(&self) {
        let peers: Vec<String> = {
            let routes = lock(&self.routes);
            let mut p: Vec<String> = routes.values().map(|r| r.peer.clone()).collect();
            p.sort();
            p.dedup();
            p
        };
        let mut registry_trusted = None;
        for peer in peers {
            // Unreachable Redis proves nothing about the peer: wait.
            if let Ok(None) = self.store.node(&peer).await {
                // Nor does a registry that Redis started with moments ago
                // (restarted without its data): live nodes are missing from
                // it until their next heartbeat. Without this check every
                // forwarded session got `owner-lost` after such a restart.
                if registry_trusted.is_none() {
                    let age = self.store.uptime_secs().await;
                    registry_trusted =
                        Some(age.is_ok_and(|s| Duration::from_secs(s) >= self.registry_age));
                }
                if registry_trusted != Some(true) {
                    break;
                }
                let gone: Vec<Route> = {
                    let mut routes = lock(&self.routes);
                    let keys: Vec<String> = routes
                        .iter()
                        .filter(|(_, r)| r.peer == peer)
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter().filter_map(|k| routes.remove(k)).collect()
                };
                if !gone.is_empty() {
                    tracing::warn!(node = %peer, sessions = gone.len(), "peer node gone; ending its forwarded sessions");
                }
                for r in gone {
                    let _ =
                        r.tx.try_send(Inbound::PeerLost(format!("node {peer} is gone")));
                }
            }
        }
    }

    /// Stops the tasks.
    fn shutdown(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}
