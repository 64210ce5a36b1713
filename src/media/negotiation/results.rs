//! What the results of media-library calls lead to, and how queued work
//! starts: the second half of [`Negotiation`]'s transitions.

use std::time::Instant;

use signaling::{ClientType, RequestId};

use crate::media::Failure;

use super::*;

impl Negotiation {
    pub(super) fn result(&mut self, now: Instant, input: Input, out: &mut Vec<Action>) {
        let Some(call) = self.call.take() else {
            // A result nobody waits for (cannot happen: the actor feeds
            // results of the actions it ran).
            return;
        };
        match (call, input) {
            (Call::Subscribe(op), Input::Subscribed { offer }) => {
                let Op::Track {
                    publisher_id,
                    track,
                    request_id,
                    ..
                } = op
                else {
                    return;
                };
                self.mlines += if self.negotiated { 1 } else { 2 };
                let tracks = self.subs.entry(publisher_id.clone()).or_default();
                tracks.push(track);
                let tracks = tracks.clone();
                self.offer(now, OfferKind::Track, publisher_id.clone());
                out.push(Action::SendOffer {
                    publisher_id,
                    offer,
                    tracks,
                    request_id,
                });
            }
            (Call::Subscribe(op), Input::SubscribeFailed(failure)) => {
                let Op::Track {
                    publisher_id,
                    track,
                    request_id,
                    first_try,
                } = op
                else {
                    return;
                };
                let started = first_try.unwrap_or(now);
                let (code, message) = match failure {
                    SubscribeFailure::Missing(_) if now < started + TRACK_WAIT => {
                        self.queue.push_front(Op::Track {
                            publisher_id,
                            track,
                            request_id,
                            first_try: Some(started),
                        });
                        self.not_before = Some(now + TRACK_RETRY);
                        return;
                    }
                    SubscribeFailure::Stuck => {
                        // Retry the track after an ICE restart, whose plain
                        // answer clears rheomesh's negotiation flag.
                        self.queue.push_front(Op::Track {
                            publisher_id,
                            track,
                            request_id,
                            first_try,
                        });
                        self.queue.push_front(Op::Restart {
                            cause: RestartCause::Stuck,
                            tries: 0,
                        });
                        return;
                    }
                    SubscribeFailure::Missing(m) => {
                        out.push(Action::TrackMissing {
                            publisher_id: publisher_id.clone(),
                            track_id: track.track_id.clone(),
                        });
                        (
                            Failure::Missing,
                            format!("subscribe to track {}: {m}", track.track_id),
                        )
                    }
                    SubscribeFailure::Budget(m) => (Failure::OverBudget, m),
                    SubscribeFailure::Other(m) => (
                        Failure::Internal,
                        format!("subscribe to track {}: {m}", track.track_id),
                    ),
                };
                error(out, code, message, ClientType::SubscribeRequest, request_id);
            }
            (Call::Prepare { request_id }, Input::Prepared { answer }) => {
                self.negotiated = true;
                self.prepared = true;
                self.mlines += 1;
                out.push(Action::SendPrepareAnswer { answer, request_id });
            }
            (Call::Prepare { request_id }, Input::PrepareFailed { message, failure }) => {
                // A rejected offer may leave the transport half-negotiated.
                self.reset();
                out.push(Action::Reset);
                error(
                    out,
                    failure,
                    message,
                    ClientType::SubscribePrepare,
                    request_id,
                );
            }
            (
                Call::Answer {
                    ice, restart_after, ..
                },
                Input::AnswerApplied,
            ) => {
                self.negotiated = true;
                self.outstanding = None;
                if ice.is_some() {
                    self.client_ice = ice;
                }
                if restart_after {
                    self.queue.push_front(Op::Restart {
                        cause: RestartCause::ClientRestarted,
                        tries: 0,
                    });
                }
            }
            (
                Call::Answer { request_id, .. },
                Input::AnswerFailed {
                    message,
                    offer_outstanding,
                },
            ) => {
                if !offer_outstanding {
                    // Half applied: recover with a fresh offer.
                    self.outstanding = None;
                    self.queue.push_front(Op::Restart {
                        cause: RestartCause::HalfApplied,
                        tries: 0,
                    });
                }
                error(
                    out,
                    Failure::Rejected,
                    format!("answer rejected: {message}"),
                    ClientType::SubscribeAnswer,
                    request_id,
                );
            }
            (Call::Restart(_), Input::Restarted { offer }) => {
                let publisher_id = self.last_publisher();
                let tracks = self.subs.get(&publisher_id).cloned().unwrap_or_default();
                self.offer(now, OfferKind::Restart, publisher_id.clone());
                out.push(Action::SendOffer {
                    publisher_id,
                    offer,
                    tracks,
                    request_id: None,
                });
            }
            (Call::Restart(op), Input::RestartFailed { message, retry }) => {
                let Op::Restart { cause, tries } = op else {
                    return;
                };
                if retry && tries + 1 < RESTART_TRIES {
                    self.queue.push_front(Op::Restart {
                        cause,
                        tries: tries + 1,
                    });
                    self.not_before = Some(now + RESTART_RETRY);
                    return;
                }
                error(
                    out,
                    Failure::Internal,
                    format!("ICE restart failed: {message}"),
                    ClientType::SubscribeRequest,
                    None,
                );
            }
            (call, input) => {
                // A result of another call than the one in flight: a bug in
                // the actor. Keep the call and say so.
                out.push(Action::Warn(format!(
                    "negotiation: unexpected {input:?} while waiting for {call:?}"
                )));
                self.call = Some(call);
            }
        }
    }

    /// Starts the next queued op if the slot is free.
    pub(super) fn pump(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.call.is_some() || self.outstanding.is_some() {
            return;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return;
        }
        self.not_before = None;
        while let Some(op) = self.queue.pop_front() {
            match op {
                Op::Track {
                    publisher_id,
                    track,
                    request_id,
                    first_try,
                } => {
                    if self.mlines >= MAX_MLINES {
                        error(out, Failure::OverBudget, format!(
                                "this subscribe connection carries {MAX_MLINES} media sections, the limit; reconnect to start a fresh one"
                            ), ClientType::SubscribeRequest, request_id);
                        continue;
                    }
                    out.push(Action::Subscribe {
                        publisher_id: publisher_id.clone(),
                        track: track.clone(),
                    });
                    self.call = Some(Call::Subscribe(Op::Track {
                        publisher_id,
                        track,
                        request_id,
                        first_try: Some(first_try.unwrap_or(now)),
                    }));
                    return;
                }
                Op::Restart { cause, tries } => {
                    out.push(Action::RestartIce { cause });
                    self.call = Some(Call::Restart(Op::Restart { cause, tries }));
                    return;
                }
            }
        }
    }

    pub(super) fn offer(&mut self, now: Instant, kind: OfferKind, publisher_id: String) {
        self.outstanding = Some(Outstanding {
            kind,
            sent_at: now,
            warned: false,
        });
        self.offer_publisher = Some(publisher_id);
    }

    /// The publisher a restart offer names: the one of the last offer, or
    /// any subscribed one.
    pub(super) fn last_publisher(&self) -> String {
        self.offer_publisher
            .clone()
            .or_else(|| self.subs.keys().next().cloned())
            .unwrap_or_default()
    }

    /// The track is subscribed, being subscribed, or queued to be. Adding it
    /// twice would put two m-sections with the same msid in one offer, which
    /// browsers refuse ("Duplicate a=msid lines").
    pub(super) fn wants(&self, publisher_id: &str, track_id: &str) -> bool {
        let is = |op: &Op| {
            matches!(op, Op::Track { publisher_id: p, track, .. }
                if p == publisher_id && track.track_id == track_id)
        };
        self.subs
            .get(publisher_id)
            .is_some_and(|ts| ts.iter().any(|t| t.track_id == track_id))
            || self.queue.iter().any(is)
            || matches!(&self.call, Some(Call::Subscribe(op)) if is(op))
    }

    pub(super) fn reset(&mut self) {
        *self = Negotiation::default();
    }
}

/// Adds an `error` action.
pub(super) fn error(
    out: &mut Vec<Action>,
    code: Failure,
    message: String,
    request_type: ClientType,
    request_id: Option<RequestId>,
) {
    out.push(Action::Error {
        failure: code,
        message,
        request_type,
        request_id,
    });
}
