//! `subscribe-request`, `subscribe-answer`, `subscribe-ice-candidate`,
//! `subscribe-prepare`, `unsubscribe`: the session's one subscribe
//! PeerConnection in a room (its media actor starts on first use).

use signaling::{CandidateInit, ErrorCode, RequestId};

use super::{busy, require, Outcome, RoomCtx};
use crate::session::{reject, Reject};

pub(super) async fn request(
    mut ctx: RoomCtx<'_>,
    publisher_id: String,
    rid: Option<RequestId>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_subscribe, "subscribing")?;
    let not_found = |room: &str| {
        reject(
            ErrorCode::NotFound,
            format!("publisher `{publisher_id}` is not publishing in room `{room}`"),
        )
    };
    if ctx.room().publisher_tracks(&publisher_id).is_none() {
        return Err(not_found(ctx.room));
    }
    let s = ctx.subscriber().await;
    // The tracks as of now: the room tells the subscriber of every later
    // change (and of none before it started).
    let tracks = ctx
        .room()
        .publisher_tracks(&publisher_id)
        .ok_or_else(|| not_found(ctx.room))?;
    s.subscribe(publisher_id, tracks, rid).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) fn answer(
    ctx: RoomCtx<'_>,
    answer: String,
    rid: Option<RequestId>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_subscribe, "subscribing")?;
    let s = ctx.rs.subscriber.as_ref().ok_or_else(|| {
        reject(
            ErrorCode::BadRequest,
            "no subscribe offer is waiting for an answer",
        )
    })?;
    s.answer(answer, rid).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) async fn candidate(
    mut ctx: RoomCtx<'_>,
    candidate: Option<CandidateInit>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_subscribe, "subscribing")?;
    let s = ctx.subscriber().await;
    s.candidate(candidate).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) async fn prepare(
    mut ctx: RoomCtx<'_>,
    offer: String,
    rid: Option<RequestId>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_subscribe, "subscribing")?;
    let s = ctx.subscriber().await;
    s.prepare(offer, rid).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) fn unsubscribe(ctx: RoomCtx<'_>, publisher_id: String) -> Result<Outcome, Reject> {
    if let Some(s) = &ctx.rs.subscriber {
        s.unsubscribe(publisher_id).map_err(busy)?;
    }
    Ok(Outcome::Done)
}
