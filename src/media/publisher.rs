//! Publisher actor: owns one participant's `PublishTransport` in one room and
//! makes every call on it in order (offer, then the candidates after it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rheomesh::publish_transport::PublishTransport;
use rheomesh::transport::Transport;
use signaling::{CandidateInit, ClientType, RequestId, TrackInfo, TrackKind};

use super::Failure;
use crate::metrics;
use tokio::sync::mpsc;
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use super::candidates::from_rtc_candidate;
use super::client_sdp;
use super::liveness::{Liveness, STATE_POLL};
use super::ports::PortLease;
use super::sdp::offered_tracks;
use super::teardown::close_when_gathered;
use super::{ActorContext, MediaEvent, SendError, INBOX};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// `publish()` waits for rheomesh's internal channel; one track at a time,
/// bounded, because concurrent calls on one transport can lose a track.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a published track may take to appear in the router.
const ROUTER_WAIT: Duration = Duration::from_secs(3);
/// How long an offered track may take to deliver its first RTP once the
/// publish PeerConnection is connected.
const ARRIVE_WAIT: Duration = Duration::from_secs(5);

enum Command {
    Offer {
        sdp: String,
        request_id: Option<RequestId>,
    },
    Candidate(Option<CandidateInit>),
}

/// Events from rheomesh callbacks (never block, never fail).
enum Internal {
    Candidate(CandidateInit),
    TrackArrived(String, TrackKind),
}

/// Handle to a publisher actor. Dropping it closes the transport.
#[derive(Debug, Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Command>,
}

impl PublisherHandle {
    /// Queues a publish offer.
    pub fn offer(&self, sdp: String, request_id: Option<RequestId>) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Offer { sdp, request_id })?)
    }

    /// Queues a client candidate (`None` = end of candidates).
    pub fn candidate(&self, candidate: Option<CandidateInit>) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Candidate(candidate))?)
    }
}

pub(super) fn spawn(ctx: ActorContext) -> PublisherHandle {
    let (tx, rx) = mpsc::channel(INBOX);
    let actor = Actor {
        ctx,
        transport: None,
        port: None,
        offered: Vec::new(),
        arrived: HashMap::new(),
        announced: Vec::new(),
        watched: HashMap::new(),
        connected_since: None,
        reported: Vec::new(),
        liveness: Liveness::default(),
    };
    // The caller's span (the participant) labels everything the actor logs.
    tokio::spawn(tracing::Instrument::instrument(
        actor.run(rx),
        tracing::Span::current(),
    ));
    PublisherHandle { tx }
}

struct Actor {
    ctx: ActorContext,
    transport: Option<Arc<PublishTransport>>,
    /// The media ports of `transport` (returned once it is closed).
    port: Option<PortLease>,
    /// Tracks the latest offer sends.
    offered: Vec<TrackInfo>,
    /// Tracks whose RTP reached the server.
    arrived: HashMap<String, TrackKind>,
    /// What the session was last told.
    announced: Vec<TrackInfo>,
    /// Tracks handed to rheomesh (`publish()` returned), watched in the router.
    watched: HashMap<String, Watched>,
    /// Since when the publish PeerConnection is connected (for [`ARRIVE_WAIT`]).
    connected_since: Option<tokio::time::Instant>,
    /// Offered tracks already reported as never arrived (once per offer).
    reported: Vec<String>,
    /// Whether the transport is over (failed, or never connected in time).
    liveness: Liveness,
}

/// Offered tracks that never delivered RTP: `ARRIVE_WAIT` after the
/// PeerConnection connected, webrtc-rs has not fired `on_track` for them.
/// That is the other face of the webrtc-rs race in [`lost_tracks`]: when the
/// stream closes before the receiver's first read, `on_track` never fires
/// ("Could not determine PayloadType" in the log). A client whose offered
/// sender has no track (`replaceTrack(null)`) sends nothing and lands here
/// too; it is reported once per offer.
fn never_arrived(
    offered: &[TrackInfo],
    arrived: &HashMap<String, TrackKind>,
    reported: &[String],
    connected_since: Option<tokio::time::Instant>,
    now: tokio::time::Instant,
) -> Vec<String> {
    match connected_since {
        Some(since) if now.duration_since(since) >= ARRIVE_WAIT => offered
            .iter()
            .map(|t| &t.track_id)
            .filter(|id| !arrived.contains_key(*id) && !reported.contains(id))
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// A published track as seen in the router.
#[derive(Debug, Clone, Copy)]
struct Watched {
    since: tokio::time::Instant,
    seen: bool,
}

/// The watched tracks that are lost: seen in the router and gone from it,
/// or never there [`ROUTER_WAIT`] after `publish()` returned. Two faults end
/// here: webrtc-rs 0.17 closing the stream of a track whose first RTP came
/// before its receiver started (the "failed Simulcast probing" warning), and
/// rheomesh's publisher task panicking on its relay UDP port. Updates `seen`.
fn lost_tracks(
    watched: &mut HashMap<String, Watched>,
    in_router: &[String],
    now: tokio::time::Instant,
) -> Vec<String> {
    let mut lost = Vec::new();
    for (id, w) in watched.iter_mut() {
        let there = in_router.iter().any(|r| r == id);
        if there {
            w.seen = true;
        } else if w.seen || now.duration_since(w.since) >= ROUTER_WAIT {
            lost.push(id.clone());
        }
    }
    lost.sort();
    lost
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (itx, mut irx) = mpsc::unbounded_channel();
        let mut poll = tokio::time::interval(STATE_POLL);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Offer { sdp, request_id }) => self.offer(sdp, request_id, &itx).await,
                    Some(Command::Candidate(c)) => self.candidate(c, &itx).await,
                    // Every handle dropped: the session unpublished or left.
                    None => break,
                },
                Some(ev) = irx.recv() => match ev {
                    Internal::Candidate(c) => {
                        self.ctx.emit(MediaEvent::PublishCandidate { room: self.ctx.room.clone(), candidate: c }).await;
                    }
                    Internal::TrackArrived(id, kind) => self.track_arrived(id, kind).await,
                },
                _ = poll.tick() => self.check_state().await,
            }
        }
        self.close_transport().await;
    }

    /// The transport, created (with its media ports) on first use; the
    /// error says that the port range is full.
    async fn transport(
        &mut self,
        itx: &mpsc::UnboundedSender<Internal>,
    ) -> Result<Arc<PublishTransport>, String> {
        if let Some(t) = &self.transport {
            return Ok(Arc::clone(t));
        }
        let port = self.ctx.ports.try_take()?;
        let mut transport = self
            .ctx
            .router
            .lock()
            .await
            .create_publish_transport(self.ctx.config.clone())
            .await;
        let tx = itx.clone();
        transport
            .on_ice_candidate(Box::new(move |c: RTCIceCandidate| {
                if let Ok(init) = c.to_json() {
                    let _ = tx.send(Internal::Candidate(from_rtc_candidate(init)));
                }
            }))
            .await;
        let tx = itx.clone();
        transport
            .on_track(Box::new(move |track, _receiver, _transceiver| {
                let kind = match track.kind() {
                    RTPCodecType::Audio => TrackKind::Audio,
                    _ => TrackKind::Video,
                };
                let _ = tx.send(Internal::TrackArrived(track.id(), kind));
            }))
            .await;
        let transport = Arc::new(transport);
        super::stats::watch(&transport, "publish", self.ctx.stats_interval);
        self.liveness.created(std::time::Instant::now());
        self.transport = Some(Arc::clone(&transport));
        self.port = Some(port);
        Ok(transport)
    }

    async fn offer(
        &mut self,
        sdp: String,
        request_id: Option<RequestId>,
        itx: &mpsc::UnboundedSender<Internal>,
    ) {
        let started = std::time::Instant::now();
        metrics::negotiation_started("publish");
        let checked =
            client_sdp::check_publisher(&sdp).and_then(|()| self.ctx.filter_candidates(sdp));
        let sdp = match checked {
            Ok(sdp) => sdp,
            Err(e) => return self.error(Failure::Rejected, e, request_id).await,
        };
        let offered = match offered_tracks(&sdp) {
            Ok(t) => t,
            Err(e) => return self.error(Failure::Rejected, e, request_id).await,
        };
        let desc = match RTCSessionDescription::offer(sdp) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .error(
                        Failure::Rejected,
                        format!("invalid SDP offer: {e}"),
                        request_id,
                    )
                    .await
            }
        };
        let transport = match self.transport(itx).await {
            Ok(t) => t,
            Err(e) => return self.error(Failure::OverBudget, e, request_id).await,
        };
        let result = tokio::time::timeout(ANSWER_TIMEOUT, transport.get_answer(desc)).await;
        match result {
            Ok(Ok(answer)) => {
                metrics::negotiation_completed("publish", started.elapsed());
                self.offered = offered;
                // The arrival wait restarts with every applied offer.
                self.reported.clear();
                self.connected_since = None;
                self.ctx
                    .emit(MediaEvent::PublishAnswer {
                        room: self.ctx.room.clone(),
                        answer: answer.sdp,
                        request_id,
                    })
                    .await;
                self.announce().await;
            }
            Ok(Err(e)) => {
                let message = format!("offer rejected: {e}");
                self.recover_if_unstable().await;
                self.error(Failure::Rejected, message, request_id).await;
            }
            Err(_) => {
                self.recover_if_unstable().await;
                self.error(
                    Failure::Internal,
                    "timed out creating the publish answer".to_owned(),
                    request_id,
                )
                .await;
            }
        }
    }

    /// A failed offer can leave the PeerConnection in `have-remote-offer`,
    /// where every later offer fails; start over with a fresh transport.
    async fn recover_if_unstable(&mut self) {
        if let Some(t) = &self.transport {
            if t.signaling_state() != RTCSignalingState::Stable {
                tracing::warn!(room = %self.ctx.room, "publish transport left unstable; recreating");
                self.close_transport().await;
            }
        }
    }

    async fn candidate(
        &mut self,
        candidate: Option<CandidateInit>,
        itx: &mpsc::UnboundedSender<Internal>,
    ) {
        let Some(c) = candidate else { return };
        if !self.ctx.accepts(&c) {
            return;
        }
        let Ok(transport) = self.transport(itx).await else {
            // No media port for a transport: its offer gets room-full.
            tracing::debug!(room = %self.ctx.room, "candidate dropped: no media ports");
            return;
        };
        // Before the offer is applied rheomesh queues the candidate itself.
        self.ctx
            .add_candidate(&*transport, &c, ClientType::PublishIceCandidate)
            .await;
    }

    async fn track_arrived(&mut self, id: String, kind: TrackKind) {
        let Some(transport) = self.transport.clone() else {
            return;
        };
        // Drain rheomesh's publish channel for this track, one at a time.
        match tokio::time::timeout(PUBLISH_TIMEOUT, transport.publish(id.clone())).await {
            Ok(Ok(_publisher)) => {
                self.watched.insert(
                    id.clone(),
                    Watched {
                        since: tokio::time::Instant::now(),
                        seen: false,
                    },
                );
            }
            Ok(Err(e)) => tracing::warn!(room = %self.ctx.room, track = %id, "publish: {e}"),
            Err(_) => tracing::warn!(room = %self.ctx.room, track = %id, "publish timed out"),
        }
        self.arrived.insert(id, kind);
        self.announce().await;
    }

    /// Tells the session when the set of live tracks changed.
    async fn announce(&mut self) {
        let live: Vec<TrackInfo> = self
            .offered
            .iter()
            .filter(|t| self.arrived.contains_key(&t.track_id))
            .cloned()
            .collect();
        if live != self.announced {
            self.announced = live.clone();
            self.ctx
                .emit(MediaEvent::PublishTracks {
                    room: self.ctx.room.clone(),
                    tracks: live,
                })
                .await;
        }
    }

    async fn check_state(&mut self) {
        let Some(t) = &self.transport else { return };
        let state = t.connection_state();
        if let Some(why) = self.liveness.over(state, std::time::Instant::now()) {
            tracing::info!(room = %self.ctx.room, %state, why, "publish connection ended");
            self.close_transport().await;
            self.announce().await;
            return;
        }
        if state != RTCPeerConnectionState::Connected {
            return;
        }
        let now = tokio::time::Instant::now();
        let since = *self.connected_since.get_or_insert(now);
        let mut lost = Vec::new();
        for track_id in never_arrived(
            &self.offered,
            &self.arrived,
            &self.reported,
            Some(since),
            now,
        ) {
            tracing::warn!(room = %self.ctx.room, track = %track_id, "offered track never delivered media");
            self.reported.push(track_id.clone());
            lost.push(track_id);
        }
        if !self.watched.is_empty() {
            // Only tracks the latest offer still sends are expected.
            let offered = &self.offered;
            self.watched
                .retain(|id, _| offered.iter().any(|t| &t.track_id == id));
            let in_router = self.ctx.router.lock().await.publisher_ids();
            for track_id in lost_tracks(&mut self.watched, &in_router, now) {
                tracing::warn!(room = %self.ctx.room, track = %track_id, "published track is gone from the router");
                self.watched.remove(&track_id);
                self.arrived.remove(&track_id);
                // Reported once: not again as "never delivered media".
                self.reported.push(track_id.clone());
                lost.push(track_id);
            }
        }
        if lost.is_empty() {
            return;
        }
        // One event for all of them: the client is asked to reconnect once.
        self.ctx
            .emit(MediaEvent::PublishLost {
                room: self.ctx.room.clone(),
                track_ids: lost,
            })
            .await;
        self.announce().await;
    }

    async fn close_transport(&mut self) {
        if let Some(t) = self.transport.take() {
            close_when_gathered(
                t,
                self.ctx.gathering_limit(),
                self.ctx.room.clone(),
                self.port.take(),
            );
        }
        self.offered.clear();
        self.arrived.clear();
        self.watched.clear();
        self.connected_since = None;
        self.reported.clear();
        self.liveness.reset();
    }

    async fn error(&self, code: Failure, message: String, request_id: Option<RequestId>) {
        // Every failure of a publish offer comes through here.
        metrics::negotiation_failed("publish");
        self.ctx
            .error(ClientType::PublishOffer, code, message, request_id)
            .await
    }
}

impl Drop for Actor {
    /// Every way out of the actor (its end, a panic) closes the transport.
    fn drop(&mut self) {
        if let Some(t) = self.transport.take() {
            close_when_gathered(
                t,
                self.ctx.gathering_limit(),
                self.ctx.room.clone(),
                self.port.take(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn watch(ids: &[&str], at: Instant) -> HashMap<String, Watched> {
        ids.iter()
            .map(|id| {
                (
                    (*id).to_owned(),
                    Watched {
                        since: at,
                        seen: false,
                    },
                )
            })
            .collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_track_in_the_router_is_not_lost() {
        let t0 = Instant::now();
        let mut w = watch(&["a", "v"], t0);
        assert!(lost_tracks(&mut w, &ids(&["a", "v", "other"]), t0).is_empty());
        assert!(w.values().all(|w| w.seen));
        assert!(lost_tracks(&mut w, &ids(&["a", "v"]), t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_track_that_leaves_the_router_is_lost_at_once() {
        let t0 = Instant::now();
        let mut w = watch(&["a", "v"], t0);
        lost_tracks(&mut w, &ids(&["a", "v"]), t0);
        let lost = lost_tracks(&mut w, &ids(&["a"]), t0 + Duration::from_millis(10));
        assert_eq!(lost, ids(&["v"]));
    }

    #[test]
    fn a_track_that_never_reaches_the_router_is_lost_after_the_wait() {
        let t0 = Instant::now();
        let mut w = watch(&["v"], t0);
        assert!(lost_tracks(&mut w, &[], t0 + ROUTER_WAIT - Duration::from_millis(1)).is_empty());
        assert_eq!(lost_tracks(&mut w, &[], t0 + ROUTER_WAIT), ids(&["v"]));
    }

    fn offered(ids: &[&str]) -> Vec<TrackInfo> {
        ids.iter()
            .map(|id| TrackInfo {
                track_id: (*id).to_owned(),
                kind: TrackKind::Video,
            })
            .collect()
    }

    #[test]
    fn an_offered_track_without_media_is_reported_once_after_the_wait() {
        let t0 = Instant::now();
        let offer = offered(&["a", "v"]);
        let mut arrived = HashMap::new();
        arrived.insert("a".to_owned(), TrackKind::Audio);
        // Not connected yet, or connected less than the wait: nothing.
        assert!(never_arrived(&offer, &arrived, &[], None, t0 + ARRIVE_WAIT).is_empty());
        assert!(
            never_arrived(&offer, &arrived, &[], Some(t0), t0 + Duration::from_secs(4)).is_empty()
        );
        // After the wait: the track that never arrived.
        assert_eq!(
            never_arrived(&offer, &arrived, &[], Some(t0), t0 + ARRIVE_WAIT),
            ids(&["v"])
        );
        // Once only.
        assert!(never_arrived(
            &offer,
            &arrived,
            &ids(&["v"]),
            Some(t0),
            t0 + ARRIVE_WAIT * 3
        )
        .is_empty());
        // Everything arrived: nothing.
        arrived.insert("v".to_owned(), TrackKind::Video);
        assert!(never_arrived(&offer, &arrived, &[], Some(t0), t0 + ARRIVE_WAIT * 3).is_empty());
    }

    #[test]
    fn a_late_arrival_within_the_wait_is_fine() {
        let t0 = Instant::now();
        let mut w = watch(&["v"], t0);
        assert!(lost_tracks(&mut w, &[], t0 + Duration::from_secs(1)).is_empty());
        assert!(lost_tracks(&mut w, &ids(&["v"]), t0 + Duration::from_secs(2)).is_empty());
        assert!(lost_tracks(&mut w, &ids(&["v"]), t0 + Duration::from_secs(30)).is_empty());
    }
}
