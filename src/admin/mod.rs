//! The admin API (`/admin/v1/`, docs/OPERATIONS.md): what an operator
//! sees of the rooms and does to them, and the live event stream.
//!
//! - here: the operations ([`Op`]), their errors ([`ApiError`]) and where
//!   each runs: a room's operation runs on the node that holds the room
//!   (forwarded through the [`crate::routing::Router`] when that is another
//!   node), the room list is gathered from every live node;
//! - `http`: the routes, the token check, request bodies;
//! - `stream`: `GET /admin/v1/events`, a WebSocket of room events and node
//!   stats for monitors.
//!
//! The rooms themselves ([`crate::room`]) do the work: views, kick, close,
//! mute, system messages. This module never names Redis: in cluster mode
//! the router and the cluster traits carry the calls and name the nodes.

mod http;
mod stream;

pub use http::routes;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::room::{AdminError, RoomView};
use crate::routing::{Call, CallError};
use crate::AppState;

/// How long a node waits for another node's answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// One admin operation. Serialized, it is what one node asks another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// The rooms of the node that runs it.
    NodeRooms,
    /// One room.
    Room {
        /// Room.
        room: String,
    },
    /// Removes a participant.
    Kick {
        /// Room.
        room: String,
        /// Participant.
        participant: String,
        /// Note for the participant.
        message: Option<String>,
    },
    /// Closes a room.
    Close {
        /// Room.
        room: String,
        /// Note for the participants.
        message: Option<String>,
    },
    /// Mutes or unmutes tracks.
    Mute {
        /// Room.
        room: String,
        /// Participant.
        participant: String,
        /// Track ids; `None`: every track of the participant.
        tracks: Option<Vec<String>>,
        /// Mute (`true`) or unmute.
        muted: bool,
    },
    /// A chat message from the system.
    Chat {
        /// Room.
        room: String,
        /// Display name shown as the sender.
        username: String,
        /// Text.
        text: String,
    },
    /// A `signal` from the system.
    Signal {
        /// Room.
        room: String,
        /// One participant, or everyone.
        to: Option<String>,
        /// Any JSON.
        data: Value,
    },
}

impl Op {
    /// The room the operation acts on (`None`: the node's room list).
    fn room(&self) -> Option<&str> {
        match self {
            Op::NodeRooms => None,
            Op::Room { room }
            | Op::Kick { room, .. }
            | Op::Close { room, .. }
            | Op::Mute { room, .. }
            | Op::Chat { room, .. }
            | Op::Signal { room, .. } => Some(room),
        }
    }
}

/// An admin request that failed: the HTTP status, a fixed code and a
/// human reason. Replies carry `{"code": …, "message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// Fixed code (docs/OPERATIONS.md lists them).
    pub code: String,
    /// Why.
    pub message: String,
}

impl ApiError {
    /// An error with this status and code.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    fn bad(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        let code = match e {
            AdminError::NoRoom(_) => "room-not-found",
            AdminError::NoParticipant { .. } => "participant-not-found",
            AdminError::NoTrack { .. } => "track-not-found",
        };
        ApiError::new(404, code, e.to_string())
    }
}

/// A node's answer to another node's call: the result, as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Answer {
    Ok(Value),
    Err { status: u16, error: ApiError },
}

/// Runs an operation where it belongs: here when this node holds the room,
/// else on the room's node. The room list is gathered from every node.
pub async fn execute(state: &AppState, op: Op) -> Result<Value, ApiError> {
    let Some(room) = op.room() else {
        return list_all(state).await;
    };
    if state.rooms.is_open(room) {
        return run_here(state, op).await;
    }
    match state.cluster.room_owner(room).await {
        Ok(Some(node)) if node != state.config.node_id => on_node(state, &node, &op).await,
        Ok(_) => Err(AdminError::NoRoom(room.to_owned()).into()),
        Err(e) => Err(ApiError::new(503, "cluster-unavailable", e.to_string())),
    }
}

/// Runs an operation on this node's rooms.
async fn run_here(state: &AppState, op: Op) -> Result<Value, ApiError> {
    let node = &state.config.node_id;
    let rooms = &state.rooms;
    Ok(match op {
        Op::NodeRooms => {
            let views: Vec<RoomView> = rooms
                .views()
                .into_iter()
                .map(|v| RoomView {
                    node: node.clone(),
                    ..v
                })
                .collect();
            json!({ "rooms": views })
        }
        Op::Room { room } => {
            let v = rooms.view(&room)?;
            json!(RoomView {
                node: node.clone(),
                ..v
            })
        }
        Op::Kick {
            room,
            participant,
            message,
        } => {
            rooms.kick(&room, &participant, message)?;
            json!({ "room": room, "participantId": participant, "kicked": true })
        }
        Op::Close { room, message } => {
            let n = rooms.close(&room, message).await?;
            json!({ "room": room, "closed": true, "participants": n })
        }
        Op::Mute {
            room,
            participant,
            tracks,
            muted,
        } => {
            let t = rooms.mute(&room, &participant, tracks.as_deref(), muted)?;
            json!({ "room": room, "participantId": participant, "tracks": t })
        }
        Op::Chat {
            room,
            username,
            text,
        } => {
            rooms.system_chat(&room, &username, text)?;
            json!({ "room": room, "sent": true })
        }
        Op::Signal { room, to, data } => {
            rooms.system_signal(&room, to.as_deref(), data)?;
            json!({ "room": room, "sent": true })
        }
    })
}

/// Asks `node` to run `op`.
async fn on_node(state: &AppState, node: &str, op: &Op) -> Result<Value, ApiError> {
    let body = serde_json::to_string(op)
        .map_err(|e| ApiError::new(500, "internal", format!("cannot encode the request: {e}")))?;
    let answer = state
        .router
        .call(node, body, NODE_TIMEOUT)
        .await
        .map_err(|e| match e {
            CallError::NoRoute => ApiError::new(
                503,
                "cluster-unavailable",
                format!("room is on node {node}, which cannot be reached from here"),
            ),
            CallError::Timeout(_) | CallError::Failed { .. } => {
                ApiError::new(504, "node-unavailable", e.to_string())
            }
        })?;
    match serde_json::from_str::<Answer>(&answer) {
        Ok(Answer::Ok(v)) => Ok(v),
        Ok(Answer::Err { status, error }) => Err(ApiError { status, ..error }),
        Err(e) => Err(ApiError::new(
            502,
            "node-unavailable",
            format!("node {node} answered something unreadable: {e}"),
        )),
    }
}

/// Every room of the cluster (of this node on a single node); nodes that
/// do not answer are listed under `unreachableNodes`.
async fn list_all(state: &AppState) -> Result<Value, ApiError> {
    let mut rooms = match run_here(state, Op::NodeRooms).await?.get_mut("rooms") {
        Some(Value::Array(a)) => std::mem::take(a),
        _ => Vec::new(),
    };
    let nodes = state
        .cluster
        .nodes()
        .await
        .map_err(|e| ApiError::new(503, "cluster-unavailable", e.to_string()))?;
    let others = nodes.iter().filter(|n| **n != state.config.node_id);
    let answers =
        futures_util::future::join_all(others.map(|n| on_node(state, n, &Op::NodeRooms))).await;
    let mut unreachable = Vec::new();
    for (node, answer) in nodes
        .iter()
        .filter(|n| **n != state.config.node_id)
        .zip(answers)
    {
        match answer {
            Ok(mut v) => {
                if let Some(Value::Array(a)) = v.get_mut("rooms") {
                    rooms.append(a);
                }
            }
            Err(e) => {
                tracing::warn!(%node, "room list: {}", e.message);
                unreachable.push(node.clone());
            }
        }
    }
    rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut out = json!({ "rooms": rooms });
    if !unreachable.is_empty() {
        out["unreachableNodes"] = json!(unreachable);
    }
    Ok(out)
}

/// Answers the calls other nodes send to this one, one at a time (an
/// operation is a few map changes, a close also closes the room's media).
pub async fn serve_calls(state: Arc<AppState>, mut calls: mpsc::Receiver<Call>) {
    while let Some(call) = calls.recv().await {
        let answer = match serde_json::from_str::<Op>(&call.body) {
            Ok(op) => match run_here(&state, op).await {
                Ok(v) => Answer::Ok(v),
                Err(error) => Answer::Err {
                    status: error.status,
                    error,
                },
            },
            Err(e) => {
                let error = ApiError::bad("bad-request", format!("unreadable node request: {e}"));
                Answer::Err {
                    status: error.status,
                    error,
                }
            }
        };
        let reply = serde_json::to_string(&answer).map_err(|e| e.to_string());
        let _ = call.reply.send(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_between_nodes() {
        for op in [
            Op::NodeRooms,
            Op::Kick {
                room: "r".into(),
                participant: "p".into(),
                message: None,
            },
            Op::Mute {
                room: "r".into(),
                participant: "p".into(),
                tracks: Some(vec!["t".into()]),
                muted: true,
            },
        ] {
            let s = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&s).unwrap(), op, "{s}");
        }
        let a = Answer::Err {
            status: 404,
            error: ApiError::new(404, "room-not-found", "x"),
        };
        let s = serde_json::to_string(&a).unwrap();
        match serde_json::from_str::<Answer>(&s).unwrap() {
            Answer::Err { status, error } => {
                assert_eq!((status, error.code.as_str()), (404, "room-not-found"))
            }
            Answer::Ok(_) => panic!("{s}"),
        }
    }
}
