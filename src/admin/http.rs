//! The admin routes under `/admin/v1/`: the token check, paths, request
//! bodies, and errors as JSON (`{"code": …, "message": …}`).
//!
//! Everything under `/admin/v1/` is answered here, unknown paths included,
//! so these routes never fall through to the rest of the server.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use warp::filters::path::Tail;
use warp::http::{Method, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::{execute, stream, ApiError, Op};
use crate::auth::Grants;
use crate::AppState;

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;
/// Longest note for a kicked participant.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Display name of system chat messages unless the request names one.
const SYSTEM_NAME: &str = "system";

/// The admin routes: `/admin/v1/…` and the event stream.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone + Send + Sync + 'static
{
    let with_state = warp::any().map(move || Arc::clone(&state));
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();
    let events = warp::path!("admin" / "v1" / "events")
        .and(warp::get())
        .and(warp::ws())
        .and(warp::header::optional::<String>("authorization"))
        .and(query)
        .and(with_state.clone())
        .then(
            |ws: warp::ws::Ws,
             auth: Option<String>,
             query: HashMap<String, String>,
             state: Arc<AppState>| async move {
                match authorize(&state, auth.as_deref())
                    .and_then(|_| stream::upgrade(ws, query, state))
                {
                    Ok(r) => r,
                    Err(e) => reply_error(e),
                }
            },
        );
    let api = warp::path("admin")
        .and(warp::path("v1"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::stream())
        .and(with_state)
        .then(
            |tail: Tail, method: Method, auth: Option<String>, body, state: Arc<AppState>| async move {
                match handle(tail.as_str(), method, auth.as_deref(), body, &state).await {
                    Ok(v) => warp::reply::json(&v).into_response(),
                    Err(e) => reply_error(e),
                }
            },
        );
    events.or(api).unify()
}

fn reply_error(e: ApiError) -> warp::reply::Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = warp::reply::with_status(warp::reply::json(&e), status).into_response();
    if e.status == 401 {
        r.headers_mut().insert(
            warp::http::header::WWW_AUTHENTICATE,
            warp::http::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// The token of `Authorization: Bearer …`, which must grant `admin`.
pub(super) fn authorize(state: &AppState, header: Option<&str>) -> Result<Grants, ApiError> {
    let Some(header) = header else {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "an admin token is needed: Authorization: Bearer <jwt>",
        ));
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                401,
                "unauthorized",
                "the Authorization header must read `Bearer <jwt>`",
            )
        })?;
    let grants = state.verifier.verify(token).map_err(|e| {
        crate::metrics::auth_failed(e.reason());
        ApiError::new(401, "unauthorized", format!("invalid token: {e}"))
    })?;
    if !grants.admin {
        return Err(ApiError::new(
            403,
            "forbidden",
            "the token does not grant admin",
        ));
    }
    Ok(grants)
}

/// `POST …/close` and `POST …/kick`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    #[serde(default)]
    message: Option<String>,
}

/// `POST …/mute` and `POST …/unmute`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Tracks {
    #[serde(default)]
    track_ids: Option<Vec<String>>,
}

/// `POST …/messages`: `text` (a chat message) or `data` (a signal).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    to: Option<String>,
}

async fn handle<S, B>(
    tail: &str,
    method: Method,
    auth: Option<&str>,
    body: S,
    state: &AppState,
) -> Result<Value, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    authorize(state, auth)?;
    let segments = segments(tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let op = match segs.as_slice() {
        ["rooms"] if get => Op::NodeRooms,
        ["rooms", room] if get => Op::Room {
            room: room_name(room)?,
        },
        ["rooms", room, "close"] if post => {
            let n: Note = parse(body).await?;
            Op::Close {
                room: room_name(room)?,
                message: note(n.message)?,
            }
        }
        ["rooms", room, "messages"] if post => {
            let m: Message = parse(body).await?;
            let room = room_name(room)?;
            match (m.text, m.data) {
                (Some(text), None) => {
                    let n = text.chars().count();
                    if n == 0 || n > signaling::MAX_CHAT_CHARS {
                        return Err(ApiError::bad(
                            "bad-text",
                            format!("text must be 1-{} characters", signaling::MAX_CHAT_CHARS),
                        ));
                    }
                    if m.to.is_some() {
                        return Err(ApiError::bad(
                            "bad-request",
                            "`to` goes with `data`; chat goes to everyone",
                        ));
                    }
                    Op::Chat {
                        room,
                        username: m.username.unwrap_or_else(|| SYSTEM_NAME.to_owned()),
                        text,
                    }
                }
                (None, Some(data)) => Op::Signal {
                    room,
                    to: m.to.map(|p| participant_id(&p)).transpose()?,
                    data,
                },
                _ => {
                    return Err(ApiError::bad(
                        "bad-request",
                        "give `text` (a chat message) or `data` (a signal), one of them",
                    ))
                }
            }
        }
        ["rooms", room, "participants", p, "kick"] if post => {
            let n: Note = parse(body).await?;
            Op::Kick {
                room: room_name(room)?,
                participant: participant_id(p)?,
                message: note(n.message)?,
            }
        }
        ["rooms", room, "participants", p, verb @ ("mute" | "unmute")] if post => {
            let t: Tracks = parse(body).await?;
            Op::Mute {
                room: room_name(room)?,
                participant: participant_id(p)?,
                tracks: t.track_ids,
                muted: *verb == "mute",
            }
        }
        ["events"] => {
            return Err(ApiError::bad(
                "websocket-required",
                "the event stream is a WebSocket: send an upgrade request",
            ))
        }
        ["rooms"]
        | ["rooms", _]
        | ["rooms", _, "close" | "messages"]
        | ["rooms", _, "participants", _, "kick" | "mute" | "unmute"] => {
            return Err(ApiError::new(
                405,
                "method-not-allowed",
                format!("{method} is not allowed here"),
            ))
        }
        _ => {
            return Err(ApiError::new(
                404,
                "not-found",
                format!("no admin route /admin/v1/{tail}"),
            ))
        }
    };
    execute(state, op).await
}

/// The path's segments, percent-decoded (a room name may hold any UTF-8).
fn segments(tail: &str) -> Result<Vec<String>, ApiError> {
    tail.strip_suffix('/')
        .unwrap_or(tail)
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::bad("bad-path", "the path is not percent-encoded UTF-8"))
        })
        .collect()
}

fn room_name(room: &str) -> Result<String, ApiError> {
    signaling::validate_room_name(room).map_err(|e| ApiError::bad("bad-room-name", e))?;
    Ok(room.to_owned())
}

fn participant_id(p: &str) -> Result<String, ApiError> {
    if p.is_empty() || p.len() > signaling::MAX_ID_BYTES || p.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "bad-participant-id",
            format!(
                "a participant id is 1-{} bytes without control characters",
                signaling::MAX_ID_BYTES
            ),
        ));
    }
    Ok(p.to_owned())
}

fn note(message: Option<String>) -> Result<Option<String>, ApiError> {
    match message {
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => Err(ApiError::bad(
            "bad-message",
            format!("message is at most {MAX_MESSAGE_CHARS} characters"),
        )),
        m => Ok(m),
    }
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; an empty body is the
/// type's default (every field optional).
async fn parse<T, S, B>(body: S) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Default,
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::bad("bad-body", e.to_string()))?;
        if bytes.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::new(
                413,
                "body-too-large",
                format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad("bad-json", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(
            segments("rooms/a%20b%2Fc/close/").unwrap(),
            vec!["rooms", "a b/c", "close"]
        );
        assert_eq!(segments("rooms/%FF").unwrap_err().code, "bad-path");
        assert_eq!(room_name("").unwrap_err().code, "bad-room-name");
        assert_eq!(
            participant_id("a\nb").unwrap_err().code,
            "bad-participant-id"
        );
        assert_eq!(
            note(Some("x".repeat(MAX_MESSAGE_CHARS + 1)))
                .unwrap_err()
                .code,
            "bad-message"
        );
    }
}
