//! ICE restarts, missing tracks, refusals and bad answers.

use super::*;

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
            assert_eq!(errors(&a)[0].0, Failure::Missing);
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
    assert_eq!(errors(&a)[0].0, Failure::OverBudget);
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
            assert_eq!(errors(&a)[0].0, Failure::Internal);
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
            Failure::Rejected,
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
            assert_eq!(*code, Failure::OverBudget);
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
