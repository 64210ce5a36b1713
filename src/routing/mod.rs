//! Signaling routing: how a client's messages reach the node that runs its
//! room, whichever node the client is connected to.
//!
//! A session that joins a room held by another node opens a [`Link`] to
//! that node with [`Router::connect`] and from then on passes frames along
//! it; the node at the other end runs the participant from an [`Incoming`]
//! link exactly as it runs a client socket. The session knows neither
//! which backend carries the link nor whether one exists:
//!
//! - [`LocalRouter`] (a single node): every room is here, there is
//!   nowhere to route to;
//! - [`redis::RedisRouter`] (cluster mode): links over Redis pub/sub.
//!
//! The server's one constructor ([`crate::Server::new`]) picks the router
//! with the cluster backend; nothing else names either.

pub mod redis;

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::auth::Grants;

/// What one end of a link receives from the other.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A text frame (a protocol message, passed on untouched).
    Frame(String),
    /// The other end ended the link.
    Closed {
        /// WebSocket close code for the client, when the room's node
        /// closed the session.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The other end is gone (its node left, or frames were lost): the
    /// client is told to reconnect.
    PeerLost(String),
}

/// The sending half of a link. Frames arrive in the order they are sent,
/// or the receiving end gets [`Inbound::PeerLost`]. Dropping the sink
/// closes the link (once).
pub trait LinkSink: Send {
    /// Sends one text frame.
    fn frame(&mut self, text: String);
    /// Ends the link, telling the other end why (and, from the room's
    /// node, the close code for the client).
    fn close(&mut self, code: Option<u16>, reason: &str);
}

/// A route between a client's node and the room's node: frames go out
/// through `sink`, the other end's frames come in on `source`.
pub struct Link {
    /// Frames to the other end.
    pub sink: Box<dyn LinkSink>,
    /// Frames from the other end; `None` once the router stopped.
    pub source: mpsc::Receiver<Inbound>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

/// A participant session that another node routes to this one.
#[derive(Debug)]
pub struct Incoming {
    /// The client's grants, verified by the node it is connected to.
    pub grants: Grants,
    /// The link back to that node.
    pub link: Link,
    /// Names the session in logs.
    pub key: String,
}

/// A request another node sent to this one (an admin operation on a room
/// this node holds), and where its answer goes. The bodies are opaque
/// here: the admin layer writes and reads them.
#[derive(Debug)]
pub struct Call {
    /// The request.
    pub body: String,
    /// The answer, or why there is none.
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// Why a call to another node has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// There are no other nodes (a single node).
    #[error("no route to other nodes")]
    NoRoute,
    /// No answer in time (the node is gone, or busy).
    #[error("node {0} did not answer in time")]
    Timeout(String),
    /// The other node could not handle it.
    #[error("node {node}: {why}")]
    Failed {
        /// The node.
        node: String,
        /// Why.
        why: String,
    },
}

/// Links between nodes for the sessions of rooms held elsewhere.
pub trait Router: Send + Sync + 'static {
    /// Opens a link from this node's session `session_id` to a participant
    /// session on `node`, which holds the room. `None` when there is no
    /// route to other nodes (a single node).
    fn connect(&self, session_id: u64, node: &str, grants: &Grants) -> Option<Link>;

    /// Sessions other nodes route to this one, to be run here. Taken once,
    /// by the server at start; `None` on a single node.
    fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>>;

    /// Stops routing (the server is shutting down).
    fn shutdown(&self) {}

    /// Sends a request to `node` and waits up to `timeout` for its answer.
    fn call(
        &self,
        _node: &str,
        _body: String,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<String, CallError>> {
        Box::pin(async { Err(CallError::NoRoute) })
    }

    /// Requests other nodes send to this one. Taken once, by the server at
    /// start; `None` on a single node.
    fn take_calls(&self) -> Option<mpsc::Receiver<Call>> {
        None
    }
}

/// A single node: there are no other nodes to route to.
#[derive(Debug, Default)]
pub struct LocalRouter;

impl Router for LocalRouter {
    fn connect(&self, _session_id: u64, _node: &str, _grants: &Grants) -> Option<Link> {
        None
    }

    fn take_incoming(&self) -> Option<mpsc::Receiver<Incoming>> {
        None
    }
}
