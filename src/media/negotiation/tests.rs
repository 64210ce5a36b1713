//! Every negotiation sequence, without WebRTC: inputs in, actions out.

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

fn errors(actions: &[Action]) -> Vec<(ErrorCode, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Error { code, message, .. } => Some((*code, message.clone())),
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

#[test]
fn unprepared_first_subscription_needs_no_ice_restart() {
    let mut b = Bench::new();
    let a = b.subscribe("p");
    assert_eq!(subscribes(&a), vec!["p-audio"]);
    let a = b.subscribed();
    assert_eq!(
        a,
        vec![Action::SendOffer {
            publisher_id: "p".to_owned(),
            offer: "offer".to_owned(),
            tracks: vec![t("p-audio", TrackKind::Audio)],
            request_id: rid(1),
        }]
    );
    // The first answer of a server-made offer is applied as pranswer then
    // answer too (the offer declares ice-lite, so the roles agree).
    let a = b.answer("c1");
    assert_eq!(
        a,
        vec![Action::ApplyAnswer {
            sdp: "answer".to_owned(),
            how: AnswerAs::PranswerThenAnswer
        }]
    );
    let a = b.feed(Input::AnswerApplied);
    assert_eq!(subscribes(&a), vec!["p-video"], "next track, no restart");
    let a = b.subscribed();
    assert_eq!(offers(&a), 1);
    let (a, c) = b.answered("c1");
    assert!(matches!(
        a[..],
        [Action::ApplyAnswer {
            how: AnswerAs::PranswerThenAnswer,
            ..
        }]
    ));
    assert!(c.is_empty());
    assert_eq!(b.n.mlines(), 3, "two tracks and the probe");
    assert!(b.n.is_live("p-audio") && b.n.is_live("p-video"));
    assert_eq!(b.n.deadline(), None);
}

#[test]
fn prepared_subscriptions_renegotiate_without_restart() {
    let mut b = Bench::new();
    b.prepared();
    assert!(b.n.prepared());
    let all = subscribe_all(&mut b, "p", "c1");
    assert_eq!(offers(&all), 2);
    assert_eq!(restarts(&all), 0);
    assert!(errors(&all).is_empty());
    assert_eq!(b.n.mlines(), 3, "the data channel and two tracks");
}

#[test]
fn prepare_after_a_subscription_is_refused() {
    let mut b = Bench::new();
    subscribe_all(&mut b, "p", "c1");
    let a = b.feed(Input::Prepare {
        offer: "o".to_owned(),
        ice: ice("c1"),
        request_id: rid(3),
    });
    assert_eq!(errors(&a).len(), 1);
    assert_eq!(errors(&a)[0].0, ErrorCode::BadRequest);
}

#[test]
fn failed_prepare_resets_the_transport() {
    let mut b = Bench::new();
    b.feed(Input::Prepare {
        offer: "o".to_owned(),
        ice: ice("c1"),
        request_id: None,
    });
    let a = b.feed(Input::PrepareFailed {
        message: "bad offer".to_owned(),
        code: ErrorCode::BadRequest,
    });
    assert_eq!(a[0], Action::Reset);
    assert_eq!(
        errors(&a),
        vec![(ErrorCode::BadRequest, "bad offer".into())]
    );
    assert!(!b.n.prepared());
    // A fresh start works.
    assert_eq!(subscribes(&b.subscribe("p")), vec!["p-audio"]);
}

#[test]
fn requests_queue_behind_the_outstanding_offer() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.subscribed();
    // While the offer waits for its answer, nothing else starts.
    let a = b.subscribe("q");
    assert!(a.is_empty());
    // Each answer lets the next track go.
    let mut order = Vec::new();
    for _ in 0..3 {
        let (_, next) = b.answered("c1");
        order.extend(subscribes(&next));
        b.subscribed();
    }
    assert_eq!(order, vec!["p-video", "q-audio", "q-video"]);
}

#[test]
fn a_repeated_request_never_queues_a_track_twice() {
    let mut b = Bench::new();
    b.subscribe("p");
    // Asked again while the first track is in flight and the second queued.
    let a = b.subscribe("p");
    assert_eq!(errors(&a)[0].0, ErrorCode::BadRequest);
    let all = {
        let mut v = b.subscribed();
        let (x, y) = b.answered("c1");
        v.extend(x);
        v.extend(y);
        v.extend(b.subscribed());
        v
    };
    assert_eq!(offers(&all), 2);
}

#[test]
fn unsubscribe_and_publisher_left_never_renegotiate() {
    let mut b = Bench::new();
    b.prepared();
    subscribe_all(&mut b, "p", "c1");
    subscribe_all(&mut b, "q", "c1");
    let a = b.feed(Input::Unsubscribe {
        publisher_id: "p".to_owned(),
    });
    assert_eq!(
        a,
        vec![Action::CloseTracks {
            publisher_id: "p".to_owned(),
            track_ids: vec!["p-audio".to_owned(), "p-video".to_owned()],
        }]
    );
    assert!(!b.n.is_live("p-audio"));
    let a = b.feed(Input::PublisherChanged {
        publisher_id: "q".to_owned(),
        tracks: None,
    });
    assert_eq!(a.len(), 1, "only the close: {a:?}");
    assert!(matches!(a[0], Action::CloseTracks { .. }));
    // Resubscribing adds tracks again, one offer each.
    let all = subscribe_all(&mut b, "p", "c1");
    assert_eq!(offers(&all), 2);
    assert_eq!(restarts(&all), 0);
}

#[test]
fn publisher_leaving_while_queued_drops_its_tracks() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.subscribed();
    b.subscribe("q");
    let a = b.feed(Input::PublisherChanged {
        publisher_id: "q".to_owned(),
        tracks: None,
    });
    assert!(a.is_empty(), "q had nothing forwarded yet: {a:?}");
    let (_, next) = b.answered("c1");
    assert_eq!(subscribes(&next), vec!["p-video"]);
    b.subscribed();
    let (_, next) = b.answered("c1");
    assert!(next.is_empty(), "q's tracks were dropped: {next:?}");
}

#[test]
fn publisher_changing_tracks_is_followed() {
    let mut b = Bench::new();
    b.prepared();
    subscribe_all(&mut b, "p", "c1");
    // p replaces its video with screen share.
    let a = b.feed(Input::PublisherChanged {
        publisher_id: "p".to_owned(),
        tracks: Some(vec![
            t("p-audio", TrackKind::Audio),
            t("p-screen", TrackKind::Video),
        ]),
    });
    assert_eq!(
        a[0],
        Action::CloseTracks {
            publisher_id: "p".to_owned(),
            track_ids: vec!["p-video".to_owned()]
        }
    );
    assert_eq!(subscribes(&a), vec!["p-screen"]);
    // Publishers nobody subscribed to are not followed.
    let a = b.feed(Input::PublisherChanged {
        publisher_id: "z".to_owned(),
        tracks: Some(av("z")),
    });
    assert!(a.is_empty());
}

#[test]
fn second_track_announced_while_first_is_in_flight_is_followed() {
    let mut b = Bench::new();
    b.feed(Input::Subscribe {
        publisher_id: "p".to_owned(),
        tracks: vec![t("p-audio", TrackKind::Audio)],
        request_id: None,
    });
    let a = b.feed(Input::PublisherChanged {
        publisher_id: "p".to_owned(),
        tracks: Some(av("p")),
    });
    assert!(a.is_empty(), "queued behind the call in flight");
    b.subscribed();
    let (_, next) = b.answered("c1");
    assert_eq!(subscribes(&next), vec!["p-video"]);
}

#[test]
fn client_ice_restart_gets_one_server_restart() {
    let mut b = Bench::new();
    b.prepared();
    b.subscribe("p");
    b.subscribed();
    // The client answers with new credentials: it restarted ICE itself.
    let a = b.answer("c2");
    assert!(matches!(
        a[..],
        [Action::ApplyAnswer {
            how: AnswerAs::Plain,
            ..
        }]
    ));
    let a = b.feed(Input::AnswerApplied);
    assert_eq!(
        a,
        vec![Action::RestartIce {
            cause: RestartCause::ClientRestarted
        }]
    );
    let a = b.feed(Input::Restarted {
        offer: "restart".to_owned(),
    });
    assert_eq!(offers(&a), 1);
    // The restart's answer is plain and restarts nothing more.
    let a = b.answer("c2");
    assert!(matches!(
        a[..],
        [Action::ApplyAnswer {
            how: AnswerAs::Plain,
            ..
        }]
    ));
    let a = b.feed(Input::AnswerApplied);
    assert_eq!(subscribes(&a), vec!["p-video"]);
    b.subscribed();
    let (a, c) = b.answered("c2");
    assert!(matches!(
        a[..],
        [Action::ApplyAnswer {
            how: AnswerAs::PranswerThenAnswer,
            ..
        }]
    ));
    assert!(c.is_empty());
}

#[test]
fn the_first_answer_of_an_unprepared_transport_is_not_a_client_restart() {
    let mut b = Bench::new();
    let all = subscribe_all(&mut b, "p", "c1");
    assert_eq!(restarts(&all), 0);
    // Later answers with the same credentials restart nothing either.
    let all = subscribe_all(&mut b, "q", "c1");
    assert_eq!(restarts(&all), 0);
}

#[test]
fn missing_track_is_retried_then_reported() {
    let mut b = Bench::new();
    b.feed(Input::Subscribe {
        publisher_id: "p".to_owned(),
        tracks: vec![t("p-video", TrackKind::Video)],
        request_id: rid(4),
    });
    let mut tries = 1;
    loop {
        let a = b.feed(Input::SubscribeFailed(SubscribeFailure::Missing(
            "no track".to_owned(),
        )));
        if !errors(&a).is_empty() {
            assert_eq!(errors(&a)[0].0, ErrorCode::NotFound);
            // The publisher is told, so that it republishes.
            assert!(
                a.contains(&Action::TrackMissing {
                    publisher_id: "p".to_owned(),
                    track_id: "p-video".to_owned(),
                }),
                "{a:?}"
            );
            break;
        }
        assert!(a.is_empty(), "waits before the retry: {a:?}");
        let deadline = b.n.deadline().expect("a retry is scheduled");
        let a = b.advance(deadline - b.now);
        assert_eq!(subscribes(&a), vec!["p-video"]);
        tries += 1;
        assert!(tries < 100, "the retries stop");
    }
    // 2 s of retries, 100 ms apart.
    assert!((15..=25).contains(&tries), "{tries} tries");
    assert_eq!(b.n.deadline(), None);
}

#[test]
fn missing_track_that_appears_is_subscribed() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.feed(Input::SubscribeFailed(SubscribeFailure::Missing(
        "no track".to_owned(),
    )));
    let a = b.advance(TRACK_RETRY);
    assert_eq!(subscribes(&a), vec!["p-audio"]);
    let a = b.subscribed();
    assert_eq!(offers(&a), 1);
}

#[test]
fn budget_refusal_is_room_full_and_the_queue_goes_on() {
    let mut b = Bench::new();
    b.subscribe("p");
    let a = b.feed(Input::SubscribeFailed(SubscribeFailure::Budget(
        "limit".to_owned(),
    )));
    assert_eq!(errors(&a)[0].0, ErrorCode::RoomFull);
    assert_eq!(subscribes(&a), vec!["p-video"]);
}

#[test]
fn stuck_subscribe_restarts_ice_once_then_retries_the_track() {
    let mut b = Bench::new();
    b.prepared();
    b.subscribe("p");
    let a = b.feed(Input::SubscribeFailed(SubscribeFailure::Stuck));
    assert_eq!(
        a,
        vec![Action::RestartIce {
            cause: RestartCause::Stuck
        }]
    );
    b.feed(Input::Restarted {
        offer: "r".to_owned(),
    });
    let (_, next) = b.answered("c1");
    assert_eq!(subscribes(&next), vec!["p-audio"], "the track again");
}

#[test]
fn restart_refused_for_now_is_retried_with_a_bound() {
    let mut b = Bench::new();
    b.prepared();
    b.subscribe("p");
    b.feed(Input::SubscribeFailed(SubscribeFailure::Stuck));
    let mut tries = 1;
    loop {
        let a = b.feed(Input::RestartFailed {
            message: "gathering".to_owned(),
            retry: true,
        });
        if !errors(&a).is_empty() {
            assert_eq!(errors(&a)[0].0, ErrorCode::Internal);
            break;
        }
        let a = b.advance(RESTART_RETRY);
        assert_eq!(restarts(&a), 1);
        tries += 1;
        assert!(tries <= RESTART_TRIES, "bounded");
    }
    assert_eq!(tries, RESTART_TRIES);
}

#[test]
fn answer_without_offer_is_bad_request() {
    let mut b = Bench::new();
    let a = b.answer("c1");
    assert_eq!(
        errors(&a),
        vec![(
            ErrorCode::BadRequest,
            "no subscribe offer is waiting for an answer".into()
        )]
    );
}

#[test]
fn rejected_answer_keeps_the_offer_for_a_retry() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.subscribed();
    b.answer("c1");
    let a = b.feed(Input::AnswerFailed {
        message: "invalid SDP".to_owned(),
        offer_outstanding: true,
    });
    assert_eq!(errors(&a).len(), 1);
    assert_eq!(restarts(&a), 0);
    // A valid answer still works.
    let (_, next) = b.answered("c1");
    assert_eq!(subscribes(&next), vec!["p-video"]);
}

#[test]
fn half_applied_answer_recovers_with_one_restart() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.subscribed();
    b.answer("c1");
    let a = b.feed(Input::AnswerFailed {
        message: "boom".to_owned(),
        offer_outstanding: false,
    });
    assert_eq!(restarts(&a), 1);
    let a = b.feed(Input::Restarted {
        offer: "r".to_owned(),
    });
    match &a[..] {
        [Action::SendOffer {
            publisher_id,
            tracks,
            ..
        }] => {
            assert_eq!(publisher_id, "p");
            assert_eq!(tracks.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_answer_is_warned_about_once() {
    let mut b = Bench::new();
    b.subscribe("p");
    b.subscribed();
    assert_eq!(b.n.deadline(), Some(b.now + ANSWER_WARN));
    let a = b.advance(Duration::from_secs(5));
    assert!(a.is_empty());
    let a = b.advance(Duration::from_secs(10));
    assert!(matches!(a[..], [Action::Warn(_)]));
    assert_eq!(b.n.deadline(), None);
    let a = b.advance(Duration::from_secs(30));
    assert!(a.is_empty());
}

#[test]
fn media_section_limit_is_room_full() {
    let mut b = Bench::new();
    b.prepared();
    let mut n = 0;
    let limit = loop {
        let p = format!("p{n}");
        let a = b.subscribe(&p);
        if let Some((code, _)) = errors(&a).first() {
            assert_eq!(*code, ErrorCode::RoomFull);
            break b.n.mlines();
        }
        b.subscribed();
        b.answered("c1");
        b.subscribed();
        b.answered("c1");
        n += 1;
        assert!(n < 100);
    };
    assert!(limit >= MAX_MLINES);
}

#[test]
fn an_unexpected_result_is_reported_not_applied() {
    let mut b = Bench::new();
    b.subscribe("p");
    let a = b.feed(Input::Prepared {
        answer: "x".to_owned(),
    });
    assert!(matches!(a[..], [Action::Warn(_)]));
    // The real result still lands.
    assert_eq!(offers(&b.subscribed()), 1);
}
