//! Every negotiation sequence, without WebRTC: inputs in, actions out. The
//! bench and its helpers are here; the cases, by theme, in `flow.rs`
//! (subscriptions, their queue, publishers changing or leaving) and
//! `recovery.rs` (ICE restarts, missing tracks, refusals, bad answers).

mod flow;
mod recovery;

use super::*;
use signaling::TrackKind;

fn t(id: &str, kind: TrackKind) -> TrackInfo {
    TrackInfo {
        track_id: id.to_owned(),
        kind,
    }
}

fn av(p: &str) -> Vec<TrackInfo> {
    vec![
        t(&format!("{p}-audio"), TrackKind::Audio),
        t(&format!("{p}-video"), TrackKind::Video),
    ]
}

fn ice(u: &str) -> Option<(String, String)> {
    Some((u.to_owned(), format!("{u}-pwd")))
}

fn rid(n: u64) -> Option<RequestId> {
    Some(serde_json::from_value(serde_json::json!(n)).unwrap())
}

/// A test bench: one state machine and a clock that only moves when told.
struct Bench {
    n: Negotiation,
    now: Instant,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            n: Negotiation::new(),
            now: Instant::now(),
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.n.handle(self.now, input)
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.feed(Input::Tick)
    }

    fn subscribe(&mut self, p: &str) -> Vec<Action> {
        self.feed(Input::Subscribe {
            publisher_id: p.to_owned(),
            tracks: av(p),
            request_id: rid(1),
        })
    }

    /// Runs a `subscribe()` that succeeds; returns the actions after it.
    fn subscribed(&mut self) -> Vec<Action> {
        self.feed(Input::Subscribed {
            offer: "offer".to_owned(),
        })
    }

    fn answer(&mut self, u: &str) -> Vec<Action> {
        self.feed(Input::Answer {
            sdp: "answer".to_owned(),
            ice: ice(u),
            request_id: None,
        })
    }

    /// Answers the outstanding offer and lets the answer apply.
    fn answered(&mut self, u: &str) -> (Vec<Action>, Vec<Action>) {
        let a = self.answer(u);
        let b = self.feed(Input::AnswerApplied);
        (a, b)
    }

    fn prepared(&mut self) {
        let a = self.feed(Input::Prepare {
            offer: "client offer".to_owned(),
            ice: ice("c1"),
            request_id: rid(7),
        });
        assert_eq!(
            a,
            vec![Action::Prepare {
                offer: "client offer".to_owned()
            }]
        );
        let a = self.feed(Input::Prepared {
            answer: "server answer".to_owned(),
        });
        assert_eq!(
            a,
            vec![Action::SendPrepareAnswer {
                answer: "server answer".to_owned(),
                request_id: rid(7)
            }]
        );
    }
}

fn subscribes(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe { track, .. } => Some(track.track_id.clone()),
            _ => None,
        })
        .collect()
}

fn offers(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::SendOffer { .. }))
        .count()
}

fn restarts(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::RestartIce { .. }))
        .count()
}

fn errors(actions: &[Action]) -> Vec<(Failure, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Error {
                failure, message, ..
            } => Some((*failure, message.clone())),
            _ => None,
        })
        .collect()
}

/// Runs one publisher's whole subscription (offer per track, each answered
/// with the same client credentials); returns every action seen.
fn subscribe_all(b: &mut Bench, p: &str, u: &str) -> Vec<Action> {
    let mut all = b.subscribe(p);
    for _ in 0..2 {
        all.extend(b.subscribed());
        let (x, y) = b.answered(u);
        all.extend(x);
        all.extend(y);
    }
    all
}
