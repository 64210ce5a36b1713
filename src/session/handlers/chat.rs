//! `chat` (to everyone in the room, echoed to the sender) and `signal` (to
//! one participant): application messages over the WebSocket.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use signaling::{ErrorCode, ServerMessage};

use super::{Outcome, RoomCtx};
use crate::session::{reject, Reject};

pub(super) fn chat(ctx: RoomCtx<'_>, text: String) -> Result<Outcome, Reject> {
    let msg = ServerMessage::Chat {
        room_name: ctx.room.to_owned(),
        participant_id: ctx.grants.participant_id.clone(),
        username: ctx.grants.username.clone(),
        text,
        ts: now_ms(),
    };
    ctx.room()
        .send_all(Some(&ctx.grants.participant_id), msg.clone());
    Ok(Outcome::Reply(msg))
}

pub(super) fn signal(ctx: RoomCtx<'_>, to: String, data: Value) -> Result<Outcome, Reject> {
    let msg = ServerMessage::Signal {
        room_name: ctx.room.to_owned(),
        from: ctx.grants.participant_id.clone(),
        data,
    };
    if ctx.room().send_to(&to, msg) {
        Ok(Outcome::Done)
    } else {
        Err(reject(
            ErrorCode::NotFound,
            format!("participant `{to}` is not in room `{}`", ctx.room),
        ))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
