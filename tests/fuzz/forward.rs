//! Frames from other nodes: what a node reads from its Redis pub/sub
//! channel (`routing::redis::decode`), and how the sequence numbers of
//! forwarded frames are ordered per session (`routing::redis::order_frame`,
//! what the forwarder's router applies to every frame).

use std::collections::HashMap;
use std::fmt;

use arbitrary::{Result, Unstructured};
use rheo_sfu::auth::{Grants, RoomScope};
use rheo_sfu::routing::redis::{decode, order_frame, FrameOrder, NodeMsg};
use serde_json::Value;

use crate::{corpus, driver, mutate};

const SESSIONS: &[&str] = &["a/1", "a/2", "b/7"];

const KEYS: &[&str] = &[
    "t",
    "session",
    "from",
    "grants",
    "seq",
    "text",
    "code",
    "reason",
    "participant_id",
    "username",
    "rooms",
    "can_publish",
    "can_subscribe",
    "admin",
    "expires_at",
    "Any",
    "Only",
];

const STRINGS: &[&str] = &[
    "open", "frame", "close", "a/1", "a/2", "b/7", "a", "Any", "Only", "",
];

/// Payloads as published on a node's channel.
struct Payloads(Vec<Vec<u8>>);

impl fmt::Debug for Payloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| String::from_utf8_lossy(p)))
            .finish()
    }
}

fn grants(u: &mut Unstructured<'_>) -> Result<Grants> {
    Ok(Grants {
        participant_id: (*u.choose(&["42", "alice", ""])?).to_owned(),
        username: (*u.choose(&["Ann", "é😀", ""])?).to_owned(),
        rooms: if u.ratio(1, 2)? {
            RoomScope::Any
        } else {
            RoomScope::Only(vec!["r1".into(), "r2".into()])
        },
        can_publish: u.arbitrary()?,
        can_subscribe: u.arbitrary()?,
        admin: u.arbitrary()?,
        expires_at: u.arbitrary()?,
    })
}

fn make(u: &mut Unstructured<'_>) -> Result<Payloads> {
    // Mostly short frames: a frame's text is a client message, which the
    // client_message target covers; here the envelope matters.
    let texts = corpus::client_messages();
    let short: Vec<&String> = texts.iter().filter(|t| t.len() < 200).collect();
    // Per session, the sequence number a well-behaved peer sends next.
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut out = Vec::new();
    for i in 0..u.int_in_range(1..=6)? {
        let session = *u.choose(SESSIONS)?;
        // Most runs open a session first, as an edge does.
        let kind = if i == 0 && u.ratio(3, 4)? {
            0
        } else {
            u.int_in_range(0..=9)?
        };
        let msg = match kind {
            0..=1 => {
                next.insert(session, 0);
                NodeMsg::Open {
                    session: session.to_owned(),
                    from: "a".to_owned(),
                    grants: grants(u)?,
                }
            }
            2..=8 => {
                let due = next.entry(session).or_insert(0);
                let seq = match u.int_in_range(0..=9)? {
                    0 => u64::MAX,
                    1 => u64::MAX - 1,
                    2 => due.saturating_add(1),
                    3 => due.saturating_sub(1),
                    4 => u.arbitrary()?,
                    _ => *due,
                };
                *due = seq.saturating_add(1);
                NodeMsg::Frame {
                    session: session.to_owned(),
                    seq,
                    text: if u.ratio(1, 20)? {
                        u.choose(texts)?.clone()
                    } else {
                        (*u.choose(&short)?).clone()
                    },
                }
            }
            _ => NodeMsg::Close {
                session: session.to_owned(),
                code: u.arbitrary()?,
                reason: mutate::any_string(u, &["bye", "é"])?,
            },
        };
        let mut payload = if u.ratio(1, 5)? {
            let mut value = serde_json::to_value(&msg).expect("serializes");
            mutate::json(u, &mut value, KEYS, STRINGS)?;
            serde_json::to_vec(&value).expect("serializes")
        } else {
            serde_json::to_vec(&msg).expect("serializes")
        };
        if u.ratio(1, 10)? {
            mutate::bytes(
                u,
                &mut payload,
                &[b"\"", b"{", b"}", b":", b",", b"\\u0000"],
                &[],
            )?;
        }
        out.push(payload);
    }
    Ok(Payloads(out))
}

/// A route as the forwarder keeps it, and what it delivered.
struct Route {
    next_in: u64,
    delivered: u64,
    lost: bool,
}

/// No panic. A payload is a message or an error; a message survives a
/// round trip through its own encoding. Per session (from its `open`), the
/// frames delivered are exactly 0, 1, 2, … with nothing after a gap.
fn check(input: &Payloads) -> &'static str {
    let mut routes: HashMap<String, Route> = HashMap::new();
    let (mut decoded, mut delivered, mut gaps) = (0, 0, 0);
    for payload in &input.0 {
        let Ok(msg) = decode(payload) else { continue };
        decoded += 1;
        let again = serde_json::to_vec(&msg).expect("serializes");
        assert_eq!(decode(&again).expect("decodes its own encoding"), msg);
        match msg {
            NodeMsg::Open { session, .. } => {
                routes.insert(
                    session,
                    Route {
                        next_in: 0,
                        delivered: 0,
                        lost: false,
                    },
                );
            }
            NodeMsg::Frame { session, seq, .. } => {
                let Some(r) = routes.get_mut(&session) else {
                    continue;
                };
                match order_frame(&mut r.next_in, seq) {
                    FrameOrder::Next => {
                        assert!(!r.lost, "frame {seq} delivered after a gap");
                        assert_eq!(seq, r.delivered, "frames out of order");
                        r.delivered += 1;
                        delivered += 1;
                    }
                    FrameOrder::Drop => {
                        assert!(
                            r.lost || seq < r.delivered,
                            "frame {seq} dropped, {} due",
                            r.delivered
                        );
                    }
                    FrameOrder::Gap { expected, got } => {
                        assert!(!r.lost, "a second gap");
                        assert_eq!((expected, got), (r.delivered, seq));
                        assert!(got > expected);
                        r.lost = true;
                        gaps += 1;
                    }
                }
            }
            NodeMsg::Close { session, .. } => {
                routes.remove(&session);
            }
            // Admin calls between nodes carry no session.
            NodeMsg::Call { .. } | NodeMsg::Reply { .. } => {}
        }
    }
    match (decoded, delivered, gaps) {
        (0, _, _) => "undecodable",
        (_, _, 1..) => "gap",
        (_, 1.., _) => "delivered",
        _ => "decoded",
    }
}

#[test]
fn forward_frame() {
    let tally = driver::run("forward_frame", make, check);
    for outcome in ["gap", "delivered", "decoded"] {
        tally.expect_share(outcome, 0.05);
    }
}

/// Sanity for the payloads: the JSON the forwarder publishes.
#[test]
fn forward_seed_decodes() {
    let msg = NodeMsg::Frame {
        session: "a/1".into(),
        seq: 0,
        text: "{}".into(),
    };
    let v: Value = serde_json::to_value(&msg).expect("serializes");
    assert_eq!(v["t"], "frame");
    assert_eq!(decode(v.to_string().as_bytes()).expect("decodes"), msg);
}

/// Inputs that failed once, kept as they were found.
#[test]
fn forward_regressions() {
    // A frame numbered u64::MAX ends the route (a gap); a second one used to
    // be "the next frame" of the lost route, and `next_in += 1` overflowed:
    // a panic in the forwarder's router task, which then stopped routing
    // every forwarded session of the node (debug builds; release builds
    // wrapped to 0 and delivered frames to the dead route).
    let open = r#"{"t":"open","session":"a/2","from":"a","grants":{"participant_id":"42","username":"Ann","rooms":"Any","can_publish":true,"can_subscribe":true,"admin":false,"expires_at":7}}"#;
    let max = r#"{"t":"frame","session":"a/2","seq":18446744073709551615,"text":"{}"}"#;
    let input = Payloads(vec![open.into(), max.into(), max.into()]);
    assert_eq!(check(&input), "gap");
}
