//! Subscriptions, their queue, and publishers changing or leaving.

use super::*;

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
    assert_eq!(errors(&a)[0].0, Failure::Rejected);
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
        failure: Failure::Rejected,
    });
    assert_eq!(a[0], Action::Reset);
    assert_eq!(errors(&a), vec![(Failure::Rejected, "bad offer".into())]);
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
    assert_eq!(errors(&a)[0].0, Failure::Rejected);
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
