//! Driver for Janus's VideoRoom: the same participants, media and
//! measurements as [`crate::sfu`], over Janus's WebSocket API. One Janus
//! session (one WebSocket) per participant, a publisher handle when it
//! publishes, and one multistream subscriber handle (one PeerConnection)
//! that receives every other publisher, like our subscribe PeerConnection.
//! Subscribe-only participants (fan-out, churn) list the room's publishers
//! once when they join and do not watch for new ones: in those scenarios the
//! publisher is live before any subscriber joins.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use sfu_testkit::rtc;
use webrtc::peer_connection::RTCPeerConnection;

use crate::janus::{JanusEvent, JanusSession};
use crate::media::Ctx;
use crate::media::{self, Publisher};
use crate::metrics::ClientRec;
use crate::scenario::Spec;

/// Where Janus is.
#[derive(Debug, Clone)]
pub struct JanusTarget {
    /// `ws://host:8188/`.
    pub ws_url: String,
    /// Publisher limit of rooms the load tester creates.
    pub max_publishers: u32,
}

/// Janus rooms are numbers: a stable one from the room name (53 bits, so
/// it survives JSON in any client).
pub fn room_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & ((1 << 53) - 1)).max(1)
}

/// Runs one participant until `ctx.stop`.
pub async fn run(target: &JanusTarget, room: &str, spec: &Spec, ctx: &Ctx, rec: Arc<ClientRec>) {
    if let Err(e) = session(target, room, spec, ctx, &rec).await {
        let text = format!("{e:#}");
        if text.contains("Maximum number of publishers") || text.contains("too many") {
            rec.refused(text);
        } else {
            rec.failed(text);
        }
    }
    rec.ended();
}

struct Subscription {
    pc: Arc<RTCPeerConnection>,
    handle: Option<u64>,
    feeds: HashSet<u64>,
}

impl Subscription {
    async fn add(
        &mut self,
        js: &JanusSession,
        room: u64,
        ctx: &Ctx,
        feeds: Vec<u64>,
    ) -> Result<()> {
        let new: Vec<u64> = feeds
            .into_iter()
            .filter(|f| !self.feeds.contains(f))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let (handle, offer) = match self.handle {
            None => {
                let (h, offer) = js.subscribe(room, &new).await?;
                self.handle = Some(h);
                (h, offer)
            }
            Some(h) => (h, js.add_feeds(h, &new).await?),
        };
        let answer = rtc::answer(&ctx.rtc, &self.pc, &offer).await?;
        js.start(handle, &answer).await?;
        self.feeds.extend(new);
        Ok(())
    }
}

async fn session(
    target: &JanusTarget,
    room: &str,
    spec: &Spec,
    ctx: &Ctx,
    rec: &Arc<ClientRec>,
) -> Result<()> {
    let room_id = room_id(room);
    let js = JanusSession::connect(&target.ws_url).await?;
    let result = async {
        js.ensure_room(room_id, target.max_publishers).await?;
        let mut events = js
            .take_events()
            .ok_or_else(|| anyhow!("janus events already taken"))?;
        let mut own_feed = None;
        let mut known: Vec<u64> = Vec::new();
        let mut pub_pc = None;
        if let Some(index) = spec.publish {
            let pc = ctx.rtc.peer().await?;
            Publisher::attach(&pc, index, &spec.name)
                .await?
                .send_when_connected(&pc, ctx);
            let offer = rtc::offer(&pc).await?;
            let published = js.publish(room_id, &spec.name, &offer).await?;
            rtc::accept_answer(&ctx.rtc, &pc, &published.answer_sdp).await?;
            own_feed = Some(published.feed_id);
            known = published.existing_feeds;
            pub_pc = Some(pc);
        }
        let mut sub = None;
        if spec.subscribe {
            let pc = ctx.rtc.peer().await?;
            media::receive(&pc, ctx.metrics.clone(), rec.clone(), ctx.stop.clone());
            if spec.publish.is_none() {
                known = js.list_publishers(room_id).await?;
            }
            let mut s = Subscription {
                pc,
                handle: None,
                feeds: HashSet::new(),
            };
            known.retain(|f| Some(*f) != own_feed);
            s.add(&js, room_id, ctx, known).await?;
            sub = Some(s);
        }
        rec.joined();
        let mut stop = ctx.stop.clone();
        let outcome = loop {
            let event = tokio::select! {
                _ = stop.wait_for(|s| *s) => break Ok(()),
                e = events.recv() => e,
            };
            match event {
                Some(JanusEvent::Joined(feed)) if Some(feed) != own_feed => {
                    if let Some(s) = sub.as_mut() {
                        s.add(&js, room_id, ctx, vec![feed]).await?;
                    }
                }
                Some(JanusEvent::Left(feed)) => {
                    if let Some(s) = sub.as_mut() {
                        s.feeds.remove(&feed);
                    }
                }
                // Janus renegotiates a subscriber on its own (a feed left).
                Some(JanusEvent::Offer { handle, sdp }) => {
                    if let Some(s) = sub.as_ref().filter(|s| s.handle == Some(handle)) {
                        let answer = rtc::answer(&ctx.rtc, &s.pc, &sdp).await?;
                        js.start(handle, &answer).await?;
                    }
                }
                Some(JanusEvent::Gone { reason, .. }) => {
                    break Err(anyhow!("janus dropped a handle: {reason}"));
                }
                Some(_) => {}
                None => break Err(anyhow!("janus session ended")),
            }
        };
        rec.ended();
        for pc in [pub_pc, sub.map(|s| s.pc)].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(5), pc.close()).await;
        }
        outcome
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), js.close()).await;
    result
}
