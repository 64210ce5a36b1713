//! The wire format between nodes: the messages on a node's channel and
//! the ordering of a forwarded session's frames.

use serde::{Deserialize, Serialize};

use crate::auth::Grants;

/// One message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum NodeMsg {
    /// Edge → owner: start a remote session for an authenticated client.
    Open {
        /// Session key.
        session: String,
        /// The edge node (where replies go).
        from: String,
        /// The client's grants, verified by the edge.
        grants: Grants,
    },
    /// A text frame: client → owner (from the edge) or owner → client.
    Frame {
        /// Session key.
        session: String,
        /// Sequence number in this direction, from 0.
        seq: u64,
        /// The frame.
        text: String,
    },
    /// Either side ends the session.
    Close {
        /// Session key.
        session: String,
        /// WebSocket close code for the client, when the owner closed it.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// A request to the node that holds a room (admin operations).
    Call {
        /// Names the answer, unique per sending node.
        id: u64,
        /// The sending node (where the answer goes).
        from: String,
        /// The request.
        body: String,
    },
    /// The answer to a [`NodeMsg::Call`].
    Reply {
        /// The call's id.
        id: u64,
        /// The answer, or why there is none.
        result: Result<String, String>,
    },
}

/// Reads a message another node published on this node's channel. Its
/// bytes come from the network: anything may arrive, and whatever does
/// is an error or a message, never a panic.
#[doc(hidden)]
pub fn decode(payload: &[u8]) -> Result<NodeMsg, serde_json::Error> {
    serde_json::from_slice(payload)
}

/// What a forwarded frame's sequence number means to its route.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOrder {
    /// The next frame: deliver it.
    Next,
    /// Seen before (a retried publish), or the route already lost frames:
    /// drop it.
    Drop,
    /// Frames were lost: the session ends with `reconnect`.
    Gap {
        /// The sequence number that was due.
        expected: u64,
        /// The one that came.
        got: u64,
    },
}

/// `next_in` of a route that lost frames: every later frame is dropped.
const LOST: u64 = u64::MAX;

/// Orders a frame with sequence number `seq` on a route that expects
/// `next_in`, and advances `next_in`.
#[doc(hidden)]
pub fn order_frame(next_in: &mut u64, seq: u64) -> FrameOrder {
    if *next_in == LOST || seq < *next_in {
        return FrameOrder::Drop;
    }
    if seq > *next_in {
        let expected = *next_in;
        *next_in = LOST;
        return FrameOrder::Gap { expected, got: seq };
    }
    *next_in += 1;
    FrameOrder::Next
}

impl NodeMsg {
    pub(super) fn session(&self) -> &str {
        match self {
            NodeMsg::Open { session, .. }
            | NodeMsg::Frame { session, .. }
            | NodeMsg::Close { session, .. } => session,
            NodeMsg::Call { .. } | NodeMsg::Reply { .. } => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::RoomScope;

    #[test]
    fn node_messages_round_trip() {
        let grants = Grants {
            participant_id: "42".into(),
            username: "ann".into(),
            rooms: RoomScope::Only(vec!["r".into()]),
            can_publish: true,
            can_subscribe: false,
            admin: false,
            expires_at: 7,
        };
        for msg in [
            NodeMsg::Open {
                session: "a/1".into(),
                from: "a".into(),
                grants,
            },
            NodeMsg::Frame {
                session: "a/1".into(),
                seq: 3,
                text: "{\"type\":\"ping\"}".into(),
            },
            NodeMsg::Close {
                session: "a/1".into(),
                code: Some(1001),
                reason: "bye".into(),
            },
            NodeMsg::Call {
                id: 9,
                from: "b".into(),
                body: "{}".into(),
            },
            NodeMsg::Reply {
                id: 9,
                result: Err("busy".into()),
            },
        ] {
            let json = serde_json::to_string(&msg).unwrap();
            assert_eq!(
                serde_json::from_str::<NodeMsg>(&json).unwrap(),
                msg,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<NodeMsg>("{\"t\":\"nope\"}").is_err());
    }

    #[test]
    fn frames_in_order_and_nothing_after_a_gap() {
        let mut next = 0;
        assert_eq!(order_frame(&mut next, 0), FrameOrder::Next);
        assert_eq!(order_frame(&mut next, 1), FrameOrder::Next);
        assert_eq!(order_frame(&mut next, 1), FrameOrder::Drop);
        assert_eq!(
            order_frame(&mut next, 3),
            FrameOrder::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(order_frame(&mut next, 2), FrameOrder::Drop);
        assert_eq!(order_frame(&mut next, 4), FrameOrder::Drop);
    }

    #[test]
    fn the_largest_sequence_number_does_not_overflow() {
        // After a gap to u64::MAX (tests/fuzz, forward_frame, finds this),
        // a frame u64::MAX was "next" and `next_in += 1` overflowed.
        let mut next = 0;
        assert_eq!(
            order_frame(&mut next, u64::MAX),
            FrameOrder::Gap {
                expected: 0,
                got: u64::MAX
            }
        );
        assert_eq!(order_frame(&mut next, u64::MAX), FrameOrder::Drop);
        assert_eq!(order_frame(&mut next, 0), FrameOrder::Drop);
    }
}
