//! Subscriber actor: owns one participant's `SubscribeTransport` in one room.
//!
//! The decisions live in [`super::negotiation`] (a pure state machine, which
//! also says how rheomesh 0.8.1's subscribe side is driven and why); this
//! actor turns commands into its inputs, makes every call on the transport,
//! strictly one at a time, feeds the results back and sends what it says.
//!
//! What the actor adds to each SDP it sends (copies only; the transport's
//! own descriptions are untouched):
//! - `a=ice-lite`, so the client controls ICE ([`sdp::declare_ice_lite`]);
//! - no header extension but the MID ([`sdp::only_mid_extension`]);
//! - the probator section as `inactive` ([`sdp::silence_probe`]);
//! - no msid on sections whose track is no longer forwarded
//!   ([`sdp::retire_stale_tracks`]).
//!
//! `subscribe()` returns a future that is not `Send`; it runs through
//! [`super::off_runtime`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rheomesh::subscribe_transport::SubscribeTransport;
use rheomesh::subscriber::Subscriber;
use rheomesh::transport::Transport;
use signaling::{CandidateInit, ClientType, RequestId, TrackInfo};

use super::Failure;
use crate::metrics;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::sdp::sdp_type::RTCSdpType;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::signaling_state::RTCSignalingState;

use super::budget::Slot;
use super::candidates::from_rtc_candidate;
use super::client_sdp;
use super::liveness::{Liveness, STATE_POLL};
use super::negotiation::{Action, AnswerAs, Input, Negotiation, SubscribeFailure};
use super::ports::PortLease;
use super::sdp;
use super::settle;
use super::teardown::close_when_gathered;
use super::{off_runtime, ActorContext, MediaEvent, SendError, INBOX};

/// A `subscribe()` that has not produced an offer by then is stuck. Generous:
/// a false alarm costs an ICE restart, which some clients cannot follow.
mod calls;

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

enum Command {
    Subscribe {
        publisher_id: String,
        tracks: Vec<TrackInfo>,
        request_id: Option<RequestId>,
    },
    Unsubscribe {
        publisher_id: String,
    },
    /// The publisher left (`None` tracks) or changed tracks.
    PublisherChanged {
        publisher_id: String,
        tracks: Option<Vec<TrackInfo>>,
    },
    Answer {
        sdp: String,
        request_id: Option<RequestId>,
    },
    Candidate(Option<CandidateInit>),
    Prepare {
        sdp: String,
        request_id: Option<RequestId>,
    },
}

/// Handle to a subscriber actor. Dropping every clone closes the transport.
#[derive(Debug, Clone)]
pub struct SubscriberHandle {
    tx: mpsc::Sender<Command>,
}

impl SubscriberHandle {
    /// Subscribes to these tracks of a publisher.
    pub fn subscribe(
        &self,
        publisher_id: String,
        tracks: Vec<TrackInfo>,
        request_id: Option<RequestId>,
    ) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Subscribe {
            publisher_id,
            tracks,
            request_id,
        })?)
    }

    /// Stops receiving a publisher.
    pub fn unsubscribe(&self, publisher_id: String) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Unsubscribe { publisher_id })?)
    }

    /// A publisher in the room left (`None`) or changed its tracks. Called
    /// by the room (under its lock, so never waits); `Busy` means the
    /// actor's inbox is full.
    pub fn publisher_changed(
        &self,
        publisher_id: String,
        tracks: Option<Vec<TrackInfo>>,
    ) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::PublisherChanged {
            publisher_id,
            tracks,
        })?)
    }

    /// The client's answer to the outstanding offer.
    pub fn answer(&self, sdp: String, request_id: Option<RequestId>) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Answer { sdp, request_id })?)
    }

    /// A client candidate.
    pub fn candidate(&self, c: Option<CandidateInit>) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Candidate(c))?)
    }

    /// The client's own offer (one data channel) for `subscribe-prepare`.
    pub fn prepare(&self, sdp: String, request_id: Option<RequestId>) -> Result<(), SendError> {
        Ok(self.tx.try_send(Command::Prepare { sdp, request_id })?)
    }
}

pub(super) fn spawn(ctx: ActorContext) -> SubscriberHandle {
    let (tx, rx) = mpsc::channel(INBOX);
    let actor = Actor {
        ctx,
        transport: None,
        port: None,
        negotiation: Negotiation::new(),
        forwarded: HashMap::new(),
        offer_sent: None,
        requested: VecDeque::new(),
        liveness: Liveness::default(),
    };
    // The caller's span (the participant) labels everything the actor logs.
    tokio::spawn(tracing::Instrument::instrument(
        actor.run(rx),
        tracing::Span::current(),
    ));
    SubscriberHandle { tx }
}

struct Actor {
    ctx: ActorContext,
    transport: Option<Arc<SubscribeTransport>>,
    /// The media ports of `transport` (returned once it is closed).
    port: Option<PortLease>,
    negotiation: Negotiation,
    /// track id -> its rheomesh subscriber and forwarding slot; dropping an
    /// entry releases the slot.
    forwarded: HashMap<String, (Arc<Mutex<Subscriber>>, Slot)>,
    /// When the outstanding offer was sent (negotiation time).
    offer_sent: Option<std::time::Instant>,
    /// When subscribe-requests arrived that no applied answer has
    /// completed yet (subscription time); at most [`PENDING_TIMES`].
    requested: VecDeque<std::time::Instant>,
    /// Whether the transport is over (failed, or never connected in time).
    liveness: Liveness,
}

/// Request times kept for the subscription-time histogram.
const PENDING_TIMES: usize = 64;

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let (itx, mut irx) = mpsc::unbounded_channel::<CandidateInit>();
        let mut poll = tokio::time::interval(STATE_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.negotiation.deadline().map(Instant::from_std);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd, &itx).await,
                    None => break,
                },
                Some(c) = irx.recv() => {
                    self.ctx.emit(MediaEvent::SubscribeCandidate { room: self.ctx.room.clone(), candidate: c }).await;
                }
                _ = sleep_until_opt(deadline) => self.feed(Input::Tick, &itx).await,
                _ = poll.tick() => self.check_state().await,
            }
        }
        self.close().await;
    }

    async fn command(&mut self, cmd: Command, itx: &mpsc::UnboundedSender<CandidateInit>) {
        let input = match cmd {
            Command::Subscribe {
                publisher_id,
                tracks,
                request_id,
            } => {
                if self.requested.len() == PENDING_TIMES {
                    self.requested.pop_front();
                }
                self.requested.push_back(std::time::Instant::now());
                Input::Subscribe {
                    publisher_id,
                    tracks,
                    request_id,
                }
            }
            Command::Unsubscribe { publisher_id } => Input::Unsubscribe { publisher_id },
            Command::PublisherChanged {
                publisher_id,
                tracks,
            } => Input::PublisherChanged {
                publisher_id,
                tracks,
            },
            Command::Answer { sdp, request_id } => Input::Answer {
                ice: sdp::ice_credentials(&sdp),
                sdp,
                request_id,
            },
            Command::Prepare { sdp, request_id } => Input::Prepare {
                ice: sdp::ice_credentials(&sdp),
                offer: sdp,
                request_id,
            },
            Command::Candidate(c) => return self.candidate(c, itx).await,
        };
        self.feed(input, itx).await;
    }

    /// Feeds one input and runs what comes out; results of library calls
    /// go back in until the machine waits for the client or the clock.
    async fn feed(&mut self, input: Input, itx: &mpsc::UnboundedSender<CandidateInit>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let actions = self.negotiation.handle(Instant::now().into_std(), input);
            for action in actions {
                if let Some(result) = self.execute(action, itx).await {
                    inputs.push_back(result);
                }
            }
        }
    }

    async fn execute(
        &mut self,
        action: Action,
        itx: &mpsc::UnboundedSender<CandidateInit>,
    ) -> Option<Input> {
        match action {
            Action::Subscribe {
                publisher_id: _,
                track,
            } => Some(self.subscribe(track, itx).await),
            Action::Prepare { offer } => Some(self.prepare(offer, itx).await),
            Action::ApplyAnswer { sdp, how } => {
                let result = self.apply_answer(sdp, how).await;
                self.count_answer(&result);
                Some(result)
            }
            Action::RestartIce { cause } => {
                metrics::ice_restart(cause.label());
                tracing::warn!(room = %self.ctx.room, ?cause, "restarting ICE of a subscribe transport");
                Some(self.restart(itx).await)
            }
            Action::SendOffer {
                publisher_id,
                offer,
                tracks,
                request_id,
            } => {
                let negotiation = &self.negotiation;
                let offer = sdp::retire_stale_tracks(&offer, |id| negotiation.is_live(id));
                let offer = sdp::only_mid_extension(&offer);
                let offer = sdp::declare_ice_lite(&sdp::silence_probe(&offer));
                metrics::negotiation_started("subscribe");
                self.offer_sent = Some(std::time::Instant::now());
                tracing::debug!(room = %self.ctx.room, publisher = %publisher_id, tracks = tracks.len(), mlines = self.negotiation.mlines(), prepared = self.negotiation.prepared(), "subscribe offer");
                self.ctx
                    .emit(MediaEvent::SubscribeOffer {
                        room: self.ctx.room.clone(),
                        publisher_id,
                        offer,
                        tracks,
                        request_id,
                    })
                    .await;
                None
            }
            Action::SendPrepareAnswer { answer, request_id } => {
                self.ctx
                    .emit(MediaEvent::SubscribePrepareAnswer {
                        room: self.ctx.room.clone(),
                        answer: sdp::declare_ice_lite(&answer),
                        request_id,
                    })
                    .await;
                None
            }
            Action::CloseTracks { track_ids, .. } => {
                for id in track_ids {
                    if let Some((s, _slot)) = self.forwarded.remove(&id) {
                        s.lock().await.close().await;
                    }
                }
                None
            }
            Action::Reset => {
                self.close().await;
                None
            }
            Action::TrackMissing {
                publisher_id,
                track_id,
            } => {
                self.ctx
                    .emit(MediaEvent::TrackMissing {
                        room: self.ctx.room.clone(),
                        publisher_id,
                        track_id,
                    })
                    .await;
                None
            }
            Action::Error {
                failure,
                message,
                request_type,
                request_id,
            } => {
                self.ctx
                    .error(request_type, failure, message, request_id)
                    .await;
                None
            }
            Action::Warn(message) => {
                tracing::warn!(room = %self.ctx.room, "{message}");
                None
            }
        }
    }

    /// Closes a transport that failed or never connected in time, and
    /// starts over: the next `subscribe-request` or `subscribe-prepare`
    /// gets a fresh PeerConnection (the client's own has failed too; the
    /// web library reconnects when it sees that).
    async fn check_state(&mut self) {
        let Some(t) = &self.transport else { return };
        let state = t.connection_state();
        let Some(why) = self.liveness.over(state, std::time::Instant::now()) else {
            return;
        };
        tracing::info!(room = %self.ctx.room, %state, why, "subscribe connection ended");
        self.close().await;
        self.negotiation = Negotiation::new();
        self.offer_sent = None;
        self.requested.clear();
    }

    async fn close(&mut self) {
        self.liveness.reset();
        for (_, (s, _slot)) in self.forwarded.drain() {
            s.lock().await.close().await;
        }
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

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
