//! Parsing and validation of client messages. Never panics: every input maps
//! to a message or to the error code the server answers with.

use serde_json::Value;

use crate::limits::{MAX_CHAT_CHARS, MAX_ID_BYTES, MAX_ROOM_NAME_BYTES};
use crate::messages::{ClientMessage, ClientType};
use crate::types::{CandidateInit, ErrorCode, RequestId};

/// Every `type` a client may send (the same list as [`ClientType::NAMES`]).
pub const CLIENT_TYPES: &[&str] = ClientType::NAMES;

/// A parsed, validated client message with its `requestId`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Echoed on the direct reply and on errors.
    pub request_id: Option<RequestId>,
    /// The message.
    pub message: ClientMessage,
}

/// Why a frame was not accepted, with what the `error` reply needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// `bad-request` or `unknown-type`.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
    /// The `type` field, when it was a string.
    pub request_type: Option<String>,
    /// The `roomName` field, when it was a string.
    pub room_name: Option<String>,
    /// The `requestId` field, when it was a string or a number.
    pub request_id: Option<RequestId>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses and validates one text frame from a client.
pub fn parse_client_message(text: &str) -> Result<Parsed, ParseError> {
    let mut err = ParseError {
        code: ErrorCode::BadRequest,
        message: String::new(),
        request_type: None,
        room_name: None,
        request_id: None,
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            err.message = format!("not JSON: {e}");
            return Err(err);
        }
    };
    let Value::Object(map) = &value else {
        err.message = "a message must be a JSON object".to_owned();
        return Err(err);
    };
    err.request_id = match map.get("requestId") {
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(RequestId(v.clone())),
        _ => None,
    };
    err.room_name = map
        .get("roomName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ty = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            err.message = "field `type` must be a string".to_owned();
            return Err(err);
        }
        None => {
            err.message = "missing field `type`".to_owned();
            return Err(err);
        }
    };
    err.request_type = Some(ty.clone());
    if ClientType::from_wire(&ty).is_none() {
        err.code = ErrorCode::UnknownType;
        err.message = format!("unknown message type `{}`", truncate(&ty, 64));
        return Err(err);
    }
    let message: ClientMessage = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => {
            err.message = format!("invalid `{ty}`: {e}");
            return Err(err);
        }
    };
    if let Err(reason) = validate(&message) {
        err.message = reason;
        return Err(err);
    }
    Ok(Parsed {
        request_id: err.request_id,
        message,
    })
}

/// Checks the field rules that serde cannot express.
pub fn validate(message: &ClientMessage) -> Result<(), String> {
    if let Some(room) = message.room_name() {
        validate_room_name(room)?;
    }
    match message {
        ClientMessage::Auth { token } if token.is_empty() => Err("empty token".to_owned()),
        ClientMessage::PublishOffer { offer: sdp, .. }
        | ClientMessage::SubscribePrepare { offer: sdp, .. } => validate_sdp(sdp, "offer"),
        ClientMessage::SubscribeAnswer { answer, .. } => validate_sdp(answer, "answer"),
        ClientMessage::PublishIceCandidate {
            candidate: Some(c), ..
        }
        | ClientMessage::SubscribeIceCandidate {
            candidate: Some(c), ..
        } => validate_candidate(c),
        ClientMessage::SubscribeRequest { publisher_id, .. }
        | ClientMessage::Unsubscribe { publisher_id, .. } => {
            validate_id(publisher_id, "publisherId")
        }
        ClientMessage::Signal { to, .. } => validate_id(to, "to"),
        ClientMessage::Chat { text, .. } => {
            let n = text.chars().count();
            if n == 0 {
                Err("chat text is empty".to_owned())
            } else if n > MAX_CHAT_CHARS {
                Err(format!(
                    "chat text has {n} characters, at most {MAX_CHAT_CHARS} allowed"
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// `roomName`: 1–128 bytes of UTF-8 without control characters.
pub fn validate_room_name(room: &str) -> Result<(), String> {
    if room.is_empty() {
        return Err("roomName is empty".to_owned());
    }
    if room.len() > MAX_ROOM_NAME_BYTES {
        return Err(format!(
            "roomName has {} bytes, at most {MAX_ROOM_NAME_BYTES} allowed",
            room.len()
        ));
    }
    if room.chars().any(char::is_control) {
        return Err("roomName contains control characters".to_owned());
    }
    Ok(())
}

fn validate_id(id: &str, field: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("{field} is longer than {MAX_ID_BYTES} bytes"));
    }
    Ok(())
}

fn validate_sdp(sdp: &str, what: &str) -> Result<(), String> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(format!("{what} is not an SDP (it must start with v=0)"));
    }
    if !sdp.contains("\nm=") {
        return Err(format!("{what} has no media section"));
    }
    Ok(())
}

fn validate_candidate(c: &CandidateInit) -> Result<(), String> {
    // `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...`
    let Some(rest) = c.candidate.strip_prefix("candidate:") else {
        return Err("candidate must start with `candidate:`".to_owned());
    };
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    if fields.len() < 7 || fields[6] != "typ" {
        return Err("malformed candidate line".to_owned());
    }
    if fields[1].parse::<u16>().is_err()
        || fields[3].parse::<u32>().is_err()
        || fields[5].parse::<u16>().is_err()
    {
        return Err("malformed candidate line".to_owned());
    }
    if c.candidate.len() > 1024 {
        return Err("candidate line too long".to_owned());
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client_message(text).unwrap_err().code
    }

    #[test]
    fn seed_shapes_parse() {
        let p = parse_client_message(
            r#"{"type":"publish-ice-candidate","roomName":"r","candidate":"candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host"}"#,
        )
        .unwrap();
        match p.message {
            ClientMessage::PublishIceCandidate {
                candidate: Some(c), ..
            } => {
                assert_eq!(c.sdp_m_line_index, Some(0));
                assert!(c.candidate.starts_with("candidate:1 "));
            }
            other => panic!("unexpected {other:?}"),
        }
        let p = parse_client_message(
            r#"{"type":"subscribe-request","roomName":"r","publisherId":7,"requestId":3}"#,
        )
        .unwrap();
        assert_eq!(p.request_id, Some(RequestId(serde_json::json!(3))));
        assert!(
            matches!(p.message, ClientMessage::SubscribeRequest { publisher_id, .. } if publisher_id == "7")
        );
    }

    #[test]
    fn sdp_object_and_string() {
        let sdp = "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n";
        for offer in [
            format!(r#""{sdp}""#),
            format!(r#"{{"type":"offer","sdp":"{sdp}"}}"#),
        ] {
            let text = format!(r#"{{"type":"publish-offer","roomName":"r","offer":{offer}}}"#);
            assert!(parse_client_message(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn end_of_candidates() {
        for c in ["null", r#""""#, r#"{"candidate":""}"#] {
            let text =
                format!(r#"{{"type":"subscribe-ice-candidate","roomName":"r","candidate":{c}}}"#);
            let p = parse_client_message(&text).unwrap();
            assert!(matches!(
                p.message,
                ClientMessage::SubscribeIceCandidate {
                    candidate: None,
                    ..
                }
            ));
        }
    }

    #[test]
    fn errors_have_codes() {
        assert_eq!(code("not json"), ErrorCode::BadRequest);
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"roomName":"x"}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"nope"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"type":"join","roomName":""}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"join","roomName":"{}"}}"#,
                "a".repeat(129)
            )),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"join","roomName":"a\u0001"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"publish-offer","roomName":"r","offer":"garbage"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"publish-ice-candidate","roomName":"r","candidate":"garbage"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"publish-ice-candidate","roomName":"r","candidate":42}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"subscribe-request","roomName":"r","publisherId":1.5}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"chat","roomName":"r","text":"{}"}}"#,
                "x".repeat(4097)
            )),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"type":"chat","roomName":"r","text":""}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn error_keeps_request_id_and_type() {
        let e = parse_client_message(r#"{"type":"join","requestId":"abc"}"#).unwrap_err();
        assert_eq!(e.request_id, Some(RequestId(serde_json::json!("abc"))));
        assert_eq!(e.request_type.as_deref(), Some("join"));
    }

    #[test]
    fn unknown_fields_ignored() {
        let p = parse_client_message(r#"{"type":"ping","whatever":{"a":1}}"#).unwrap();
        assert_eq!(p.message, ClientMessage::Ping);
    }

    #[test]
    fn server_message_request_id() {
        let json = crate::ServerMessage::Pong.to_json(Some(&RequestId(serde_json::json!(9))));
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "pong");
        assert_eq!(v["requestId"], 9);
    }
}
