//! Client messages: every WebSocket text frame goes through
//! `signaling::parse_client_message` first.

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use serde_json::Value;
use signaling::{parse_client_message, validate, ErrorCode, CLIENT_TYPES};

use crate::{corpus, driver, mutate};

const KEYS: &[&str] = &[
    "type",
    "roomName",
    "requestId",
    "token",
    "offer",
    "answer",
    "sdp",
    "candidate",
    "sdpMid",
    "sdpMLineIndex",
    "usernameFragment",
    "publisherId",
    "to",
    "data",
    "text",
];

fn strings() -> &'static [&'static str] {
    static S: OnceLock<Vec<&'static str>> = OnceLock::new();
    S.get_or_init(|| {
        let mut s: Vec<&'static str> = CLIENT_TYPES.to_vec();
        s.extend([
            "",
            " ",
            "*",
            "offer",
            "answer",
            "pranswer",
            "my-room",
            "7",
            "candidate:",
            "a=candidate:1 1 udp 1 10.0.0.1 9 typ host",
            "v=0",
            "v=0\r\n",
            "\nm=",
            "\u{0}",
            "\u{7f}",
            "é",
            "😀",
        ]);
        s.extend(corpus::CANDIDATES);
        s.push(corpus::SMALL_SDP);
        s
    })
}

/// A frame as a client could send it.
fn make(u: &mut Unstructured<'_>) -> Result<String> {
    static SEEDS: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    let seeds = SEEDS.get_or_init(|| {
        corpus::client_messages()
            .iter()
            .map(|m| {
                let v = serde_json::from_str(m).expect("seed is JSON");
                (m.clone(), v)
            })
            .collect()
    });
    if u.ratio(1, 20)? {
        return mutate::any_string(u, strings());
    }
    let (text, value) = u.choose(seeds)?;
    let mut text = text.clone();
    if u.ratio(3, 4)? {
        let mut value = value.clone();
        mutate::json(u, &mut value, KEYS, strings())?;
        text = value.to_string();
    }
    if u.ratio(1, 4)? {
        mutate::text(
            u,
            &mut text,
            &[
                "\"", "{", "}", ",", ":", "\\u0000", "\\ud800", "null", "1e999", "-0",
            ],
        )?;
    }
    Ok(text)
}

/// No panic; an error has the code the server answers with; an accepted
/// message passes validation and survives a round trip through its own
/// serialization unchanged.
fn check(text: &str) -> &'static str {
    match parse_client_message(text) {
        Err(e) => {
            assert!(!e.message.is_empty(), "error without a reason: {e:?}");
            match e.code {
                ErrorCode::BadRequest => "bad-request",
                ErrorCode::UnknownType => {
                    let ty = e
                        .request_type
                        .as_deref()
                        .expect("unknown-type names the type");
                    assert!(
                        !CLIENT_TYPES.contains(&ty),
                        "known type {ty} called unknown"
                    );
                    "unknown-type"
                }
                other => panic!("parse error with code {other:?}: {e:?}"),
            }
        }
        Ok(parsed) => {
            let message = &parsed.message;
            assert!(CLIENT_TYPES.contains(&message.type_name()));
            validate(message).expect("an accepted message is valid");
            let json = serde_json::to_string(message).expect("serializes");
            let again = parse_client_message(&json).unwrap_or_else(|e| {
                panic!("accepted message does not parse again: {e:?} from {json}")
            });
            assert_eq!(&again.message, message, "round trip changed the message");
            message.type_name()
        }
    }
}

#[test]
fn client_message() {
    let tally = driver::run("client_message", make, |text: &String| check(text));
    tally.expect_share("bad-request", 0.05);
    // Every message type is reached, accepted, by mutated inputs.
    for ty in CLIENT_TYPES {
        tally.expect_share(ty, 0.0005);
    }
}
