//! `publish-offer`, `publish-ice-candidate`, `unpublish`: the session's
//! publish PeerConnection in a room (its media actor starts on first use).

use signaling::{ErrorCode, RequestId};

use super::{busy, require, Outcome, RoomCtx};
use crate::media::sdp::offered_tracks;
use crate::session::{reject, Reject};

pub(super) async fn offer(
    mut ctx: RoomCtx<'_>,
    offer: String,
    rid: Option<RequestId>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_publish, "publishing")?;
    let max = ctx.limits.max_tracks_per_publisher;
    let sections = offer.lines().filter(|l| l.starts_with("m=")).count();
    if sections > max {
        return Err(reject(
            ErrorCode::QuotaExceeded,
            format!("the offer has {sections} media sections; the limit is {max} (MAX_TRACKS_PER_PUBLISHER)"),
        ));
    }
    let tracks = offered_tracks(&offer).map_err(|e| reject(ErrorCode::BadRequest, e))?;
    ctx.room()
        .claim_tracks(
            &ctx.grants.participant_id,
            ctx.session_id,
            tracks.into_iter().map(|t| t.track_id).collect(),
        )
        .map_err(|e| reject(ErrorCode::BadRequest, e))?;
    let p = ctx.publisher().await;
    p.offer(offer, rid).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) async fn candidate(
    mut ctx: RoomCtx<'_>,
    candidate: Option<signaling::CandidateInit>,
) -> Result<Outcome, Reject> {
    require(ctx.grants.can_publish, "publishing")?;
    let p = ctx.publisher().await;
    p.candidate(candidate).map_err(busy)?;
    Ok(Outcome::Done)
}

pub(super) fn unpublish(ctx: RoomCtx<'_>) -> Result<Outcome, Reject> {
    if ctx.rs.publisher.take().is_some() {
        ctx.rs
            .room
            .set_live_tracks(&ctx.grants.participant_id, ctx.session_id, Vec::new());
    }
    Ok(Outcome::Done)
}
