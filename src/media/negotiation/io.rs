//! The state machine's inputs (client messages, call results, time) and
//! outputs (actions for the subscriber actor).

use signaling::{ClientType, RequestId, TrackInfo};

use crate::media::Failure;

/// How a client answer is applied to the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerAs {
    /// As `answer` (ICE restarts, and answers that bring new client ICE
    /// credentials).
    Plain,
    /// As `pranswer`, a pause, then as `answer` (every other negotiation).
    PranswerThenAnswer,
}

/// Why the server restarts ICE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// The client answered a renegotiation with new ICE credentials.
    ClientRestarted,
    /// A `subscribe()` call did not return: the transport is stuck.
    Stuck,
    /// An answer was rejected after part of it was applied.
    HalfApplied,
}

impl RestartCause {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            RestartCause::ClientRestarted => "client-restarted",
            RestartCause::Stuck => "stuck",
            RestartCause::HalfApplied => "half-applied",
        }
    }
}

/// Why a `subscribe()` call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeFailure {
    /// The publisher does not have the track (yet).
    Missing(String),
    /// The node forwards as many tracks as it may.
    Budget(String),
    /// The call did not return in time.
    Stuck,
    /// Anything else.
    Other(String),
}

/// What happens to the state machine.
#[derive(Debug)]
pub enum Input {
    /// `subscribe-request`: these tracks of a publisher.
    Subscribe {
        publisher_id: String,
        tracks: Vec<TrackInfo>,
        request_id: Option<RequestId>,
    },
    /// `unsubscribe`.
    Unsubscribe { publisher_id: String },
    /// The publisher left (`None`) or its tracks changed (complete list).
    PublisherChanged {
        publisher_id: String,
        tracks: Option<Vec<TrackInfo>>,
    },
    /// `subscribe-prepare`: the client's own offer.
    Prepare {
        offer: String,
        ice: Option<(String, String)>,
        request_id: Option<RequestId>,
    },
    /// `subscribe-answer`, with the answer's ICE credentials.
    Answer {
        sdp: String,
        ice: Option<(String, String)>,
        request_id: Option<RequestId>,
    },
    /// [`Action::Subscribe`] made this offer.
    Subscribed { offer: String },
    /// [`Action::Subscribe`] failed.
    SubscribeFailed(SubscribeFailure),
    /// [`Action::Prepare`] made this answer.
    Prepared { answer: String },
    /// [`Action::Prepare`] failed: the offer's fault ([`Failure::Rejected`]),
    /// no media port left ([`Failure::OverBudget`]), or the library's
    /// ([`Failure::Internal`]).
    PrepareFailed { message: String, failure: Failure },
    /// [`Action::ApplyAnswer`] succeeded.
    AnswerApplied,
    /// [`Action::ApplyAnswer`] failed; `offer_outstanding`: nothing was
    /// applied, the offer still waits for an answer.
    AnswerFailed {
        message: String,
        offer_outstanding: bool,
    },
    /// [`Action::RestartIce`] made this offer.
    Restarted { offer: String },
    /// [`Action::RestartIce`] failed; `retry`: the library refused for now.
    RestartFailed { message: String, retry: bool },
    /// Time passed (see [`Negotiation::deadline`]).
    Tick,
}

/// What the actor does, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Call `subscribe(track)`; answer with `Subscribed` / `SubscribeFailed`.
    Subscribe {
        publisher_id: String,
        track: TrackInfo,
    },
    /// Apply the client's offer and make an answer; `Prepared` / `PrepareFailed`.
    Prepare { offer: String },
    /// Apply an answer; `AnswerApplied` / `AnswerFailed`.
    ApplyAnswer { sdp: String, how: AnswerAs },
    /// Restart ICE and make an offer; `Restarted` / `RestartFailed`.
    RestartIce { cause: RestartCause },
    /// Send a `subscribe-offer`.
    SendOffer {
        publisher_id: String,
        offer: String,
        tracks: Vec<TrackInfo>,
        request_id: Option<RequestId>,
    },
    /// Send the `subscribe-prepare-answer`.
    SendPrepareAnswer {
        answer: String,
        request_id: Option<RequestId>,
    },
    /// Stop forwarding these tracks (close their rheomesh subscribers).
    CloseTracks {
        publisher_id: String,
        track_ids: Vec<String>,
    },
    /// Close the transport and every subscription; the next request starts
    /// a fresh one.
    Reset,
    /// The publisher announced this track, but the media library says it
    /// has no media for it: tell the publisher (its session asks it to
    /// republish).
    TrackMissing {
        publisher_id: String,
        track_id: String,
    },
    /// Send an `error`.
    Error {
        failure: Failure,
        message: String,
        request_type: ClientType,
        request_id: Option<RequestId>,
    },
    /// Log a warning (the client is slow to answer).
    Warn(String),
}
