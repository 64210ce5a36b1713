//! The negotiation of one subscribe PeerConnection, as a pure state machine.
//!
//! No I/O and no clock: the subscriber actor ([`super::subscriber`]) feeds in
//! client messages, the results of media-library calls and the time
//! (`now`), and executes the [`Action`]s that come out, in order. At most
//! one media-library call is in flight and at most one offer is outstanding;
//! everything else waits in a queue.
//!
//! How rheomesh 0.8.1's subscribe side is driven (the evidence is in
//! `ARCHITECTURE.md` and the README's rheomesh table):
//! - `subscribe()` adds one track and makes an offer; its negotiation-needed
//!   handler, which waits for the answer, would then make a second offer of
//!   its own and hang the transport. Every answer to a server offer is
//!   therefore applied twice, first typed `pranswer` (the handler wakes, sees
//!   a non-stable state and exits), then as `answer`
//!   ([`AnswerAs::PranswerThenAnswer`]). This holds for the first
//!   negotiation too: webrtc-rs treats that `pranswer` like a remote offer
//!   and starts ICE controlled, and every subscribe offer declares
//!   `a=ice-lite`, so the client (a full agent) controls. Roles agree, no
//!   ICE restart is ever needed to unstick the transport, and clients
//!   without ICE-restart support (aiortc, GStreamer) work.
//! - The server restarts ICE only when the client restarted (a
//!   renegotiation answer with new ICE credentials: the answer is applied
//!   plain, then the server restarts once), or when a media-library call is
//!   stuck or an answer was half applied (the transport is broken).
//! - A publisher leaving or a track going away never renegotiates: rheomesh
//!   cannot remove a transceiver, so an offer would change nothing the
//!   client can see; the forwarded track goes silent and `publisher-left`
//!   tells the client.
//! - One offer per track: rheomesh makes offers only in `subscribe()`, one
//!   track each (its `Track` handles are crate-private, so tracks cannot be
//!   added first and offered together).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use signaling::{ClientType, RequestId, TrackInfo};

use crate::media::Failure;

mod io;
mod results;

pub use io::*;
use results::error;

/// How long a freshly published track may be missing from its publisher
/// (rheomesh registers it asynchronously).
pub const TRACK_WAIT: Duration = Duration::from_secs(2);
/// Pause between two tries of a track that is not there yet.
pub const TRACK_RETRY: Duration = Duration::from_millis(100);
/// Limit on m-sections of one subscribe PeerConnection: rheomesh never
/// removes a transceiver, and answers must fit in a 64 KiB frame.
pub const MAX_MLINES: usize = signaling::MAX_SUBSCRIBE_MEDIA_SECTIONS;
/// When an outstanding offer without answer is worth a warning.
pub const ANSWER_WARN: Duration = Duration::from_secs(15);
/// Pause between tries of an ICE restart that the library refused for now
/// (still gathering, or the connection has not started).
pub const RESTART_RETRY: Duration = Duration::from_millis(200);
/// Tries of one ICE restart.
pub const RESTART_TRIES: u32 = 25;

/// Work waiting for the negotiation slot.
#[derive(Debug, Clone)]
enum Op {
    Track {
        publisher_id: String,
        track: TrackInfo,
        request_id: Option<RequestId>,
        /// When the first try started (for [`TRACK_WAIT`]).
        first_try: Option<Instant>,
    },
    Restart {
        cause: RestartCause,
        tries: u32,
    },
}

/// The library call in flight, with what its result needs.
#[derive(Debug)]
enum Call {
    Subscribe(Op),
    Prepare {
        request_id: Option<RequestId>,
    },
    Answer {
        request_id: Option<RequestId>,
        ice: Option<(String, String)>,
        restart_after: bool,
    },
    Restart(Op),
}

#[derive(Debug)]
enum OfferKind {
    Track,
    Restart,
}

#[derive(Debug)]
struct Outstanding {
    kind: OfferKind,
    sent_at: Instant,
    warned: bool,
}

/// The negotiation state of one subscribe PeerConnection.
#[derive(Debug, Default)]
pub struct Negotiation {
    /// A remote description has been applied (prepare or first answer).
    negotiated: bool,
    /// The client made the first offer (`subscribe-prepare`).
    prepared: bool,
    /// The client's ICE credentials as last applied.
    client_ice: Option<(String, String)>,
    call: Option<Call>,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Op>,
    /// A queued op may not start before then (retry pause).
    not_before: Option<Instant>,
    /// publisher id -> its forwarded tracks.
    subs: HashMap<String, Vec<TrackInfo>>,
    mlines: usize,
    /// The publisher whose track the last offer carried.
    offer_publisher: Option<String>,
}

impl Negotiation {
    /// A fresh PeerConnection (no transport yet).
    pub fn new() -> Negotiation {
        Negotiation::default()
    }

    /// Whether the track is forwarded to this PeerConnection now.
    pub fn is_live(&self, track_id: &str) -> bool {
        self.subs
            .values()
            .any(|ts| ts.iter().any(|t| t.track_id == track_id))
    }

    /// The client made the first offer (`subscribe-prepare`).
    pub fn prepared(&self) -> bool {
        self.prepared
    }

    /// Media sections the PeerConnection carries (rheomesh never removes one).
    pub fn mlines(&self) -> usize {
        self.mlines
    }

    /// When the actor should send a [`Input::Tick`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let warn = self
            .outstanding
            .as_ref()
            .filter(|o| !o.warned)
            .map(|o| o.sent_at + ANSWER_WARN);
        let retry = if self.call.is_none() && self.outstanding.is_none() && !self.queue.is_empty() {
            self.not_before
        } else {
            None
        };
        match (warn, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Subscribe {
                publisher_id,
                tracks,
                request_id,
            } => self.subscribe(publisher_id, tracks, request_id, &mut out),
            Input::Unsubscribe { publisher_id } => self.drop_publisher(&publisher_id, &mut out),
            Input::PublisherChanged {
                publisher_id,
                tracks: None,
            } => self.drop_publisher(&publisher_id, &mut out),
            Input::PublisherChanged {
                publisher_id,
                tracks: Some(tracks),
            } => self.publisher_changed(publisher_id, tracks, &mut out),
            Input::Prepare {
                offer,
                ice,
                request_id,
            } => self.prepare(offer, ice, request_id, &mut out),
            Input::Answer {
                sdp,
                ice,
                request_id,
            } => self.answer(sdp, ice, request_id, &mut out),
            Input::Tick => {
                if let Some(o) = self.outstanding.as_mut() {
                    if !o.warned && now >= o.sent_at + ANSWER_WARN {
                        o.warned = true;
                        out.push(Action::Warn(format!(
                            "the client has not answered the subscribe offer for {} s; further subscriptions wait",
                            ANSWER_WARN.as_secs()
                        )));
                    }
                }
            }
            result => self.result(now, result, &mut out),
        }
        self.pump(now, &mut out);
        out
    }

    fn subscribe(
        &mut self,
        publisher_id: String,
        tracks: Vec<TrackInfo>,
        request_id: Option<RequestId>,
        out: &mut Vec<Action>,
    ) {
        let new: Vec<TrackInfo> = tracks
            .into_iter()
            .filter(|t| !self.wants(&publisher_id, &t.track_id))
            .collect();
        if new.is_empty() {
            error(
                out,
                Failure::Rejected,
                format!("already subscribed to every track of {publisher_id}"),
                ClientType::SubscribeRequest,
                request_id,
            );
            return;
        }
        let mut request_id = request_id;
        for track in new {
            self.queue.push_back(Op::Track {
                publisher_id: publisher_id.clone(),
                track,
                request_id: request_id.take(),
                first_try: None,
            });
        }
    }

    /// Unsubscribe, or the publisher left: its tracks stop, nothing is
    /// renegotiated (see the module comment).
    fn drop_publisher(&mut self, publisher_id: &str, out: &mut Vec<Action>) {
        self.queue
            .retain(|op| !matches!(op, Op::Track { publisher_id: p, .. } if p == publisher_id));
        if let Some(tracks) = self.subs.remove(publisher_id) {
            out.push(Action::CloseTracks {
                publisher_id: publisher_id.to_owned(),
                track_ids: tracks.into_iter().map(|t| t.track_id).collect(),
            });
        }
    }

    /// Only publishers this participant subscribed to are followed,
    /// including those whose first track still waits in the queue (tracks
    /// are announced one by one, so the second often comes while the first
    /// is queued).
    fn publisher_changed(
        &mut self,
        publisher_id: String,
        tracks: Vec<TrackInfo>,
        out: &mut Vec<Action>,
    ) {
        let queued = self
            .queue
            .iter()
            .any(|op| matches!(op, Op::Track { publisher_id: p, .. } if *p == publisher_id))
            || matches!(&self.call, Some(Call::Subscribe(Op::Track { publisher_id: p, .. })) if *p == publisher_id);
        if !self.subs.contains_key(&publisher_id) && !queued {
            return;
        }
        let keep = |id: &str| tracks.iter().any(|t| t.track_id == id);
        self.queue.retain(|op| {
            !matches!(op, Op::Track { publisher_id: p, track, .. }
                if *p == publisher_id && !keep(&track.track_id))
        });
        if let Some(current) = self.subs.get_mut(&publisher_id) {
            let gone: Vec<String> = current
                .iter()
                .filter(|t| !keep(&t.track_id))
                .map(|t| t.track_id.clone())
                .collect();
            current.retain(|t| keep(&t.track_id));
            if !gone.is_empty() {
                out.push(Action::CloseTracks {
                    publisher_id: publisher_id.clone(),
                    track_ids: gone,
                });
            }
        }
        for track in tracks {
            if !self.wants(&publisher_id, &track.track_id) {
                self.queue.push_back(Op::Track {
                    publisher_id: publisher_id.clone(),
                    track,
                    request_id: None,
                    first_try: None,
                });
            }
        }
    }

    fn prepare(
        &mut self,
        offer: String,
        ice: Option<(String, String)>,
        request_id: Option<RequestId>,
        out: &mut Vec<Action>,
    ) {
        if self.negotiated
            || self.call.is_some()
            || self.outstanding.is_some()
            || !self.subs.is_empty()
            || !self.queue.is_empty()
        {
            error(
                out,
                Failure::Rejected,
                "subscribe-prepare must come before the first subscription".to_owned(),
                ClientType::SubscribePrepare,
                request_id,
            );
            return;
        }
        self.client_ice = ice;
        self.call = Some(Call::Prepare { request_id });
        out.push(Action::Prepare { offer });
    }

    fn answer(
        &mut self,
        sdp: String,
        ice: Option<(String, String)>,
        request_id: Option<RequestId>,
        out: &mut Vec<Action>,
    ) {
        let Some(outstanding) = &self.outstanding else {
            error(
                out,
                Failure::Rejected,
                "no subscribe offer is waiting for an answer".to_owned(),
                ClientType::SubscribeAnswer,
                request_id,
            );
            return;
        };
        if self.call.is_some() {
            // Unreachable while an offer is outstanding (no call starts
            // then); refuse rather than run two calls at once.
            error(
                out,
                Failure::Rejected,
                "the previous answer is still being applied".to_owned(),
                ClientType::SubscribeAnswer,
                request_id,
            );
            return;
        }
        // New client credentials in an answer to a renegotiation mean the
        // client restarted ICE on its side (webrtc-rs does so by itself when
        // an offer overtakes its transport start). A `pranswer` would make
        // webrtc-rs restart the server's agent with credentials the client
        // never gets: apply it plain, then restart the server's side once.
        let client_restarted = matches!(outstanding.kind, OfferKind::Track)
            && self.client_ice.is_some()
            && ice.is_some()
            && ice != self.client_ice;
        let how = match outstanding.kind {
            OfferKind::Restart => AnswerAs::Plain,
            OfferKind::Track if client_restarted => AnswerAs::Plain,
            OfferKind::Track => AnswerAs::PranswerThenAnswer,
        };
        self.call = Some(Call::Answer {
            request_id,
            ice,
            restart_after: client_restarted,
        });
        out.push(Action::ApplyAnswer { sdp, how });
    }
}

#[cfg(test)]
mod tests;
