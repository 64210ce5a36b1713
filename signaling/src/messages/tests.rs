//! The JSON of every message type, and its wire names.

use super::*;

#[test]
fn reconnect_reasons_are_kebab_case() {
    for (reason, text) in [
        (ReconnectReason::Draining, "draining"),
        (ReconnectReason::OwnerLost, "owner-lost"),
        (ReconnectReason::RoomMoved, "room-moved"),
        (ReconnectReason::MediaLost, "media-lost"),
    ] {
        let json = ServerMessage::Reconnect {
            reason,
            retry_after_ms: 200,
        }
        .to_json(None);
        let v: Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(v["type"], "reconnect");
        assert_eq!(v["reason"], text);
        assert_eq!(v["retryAfterMs"], 200);
    }
}

/// One message of every type, with the wire `type` PROTOCOL.md gives it.
fn client_samples() -> Vec<(ClientMessage, &'static str)> {
    let room = || Some("r".to_owned());
    let sdp = || "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".to_owned();
    vec![
        (ClientMessage::Auth { token: "t".into() }, "auth"),
        (
            ClientMessage::Join {
                room_name: "r".into(),
            },
            "join",
        ),
        (
            ClientMessage::Leave {
                room_name: "r".into(),
            },
            "leave",
        ),
        (
            ClientMessage::PublishOffer {
                room_name: room(),
                offer: sdp(),
            },
            "publish-offer",
        ),
        (
            ClientMessage::PublishIceCandidate {
                room_name: room(),
                candidate: None,
            },
            "publish-ice-candidate",
        ),
        (ClientMessage::Unpublish { room_name: room() }, "unpublish"),
        (
            ClientMessage::SubscribeRequest {
                room_name: room(),
                publisher_id: "p".into(),
            },
            "subscribe-request",
        ),
        (
            ClientMessage::SubscribeAnswer {
                room_name: room(),
                publisher_id: Some("p".into()),
                answer: sdp(),
            },
            "subscribe-answer",
        ),
        (
            ClientMessage::SubscribeIceCandidate {
                room_name: room(),
                candidate: None,
            },
            "subscribe-ice-candidate",
        ),
        (
            ClientMessage::SubscribePrepare {
                room_name: room(),
                offer: sdp(),
            },
            "subscribe-prepare",
        ),
        (
            ClientMessage::Unsubscribe {
                room_name: room(),
                publisher_id: "p".into(),
            },
            "unsubscribe",
        ),
        (
            ClientMessage::Chat {
                room_name: room(),
                text: "hi".into(),
            },
            "chat",
        ),
        (
            ClientMessage::Signal {
                room_name: room(),
                to: "p".into(),
                data: Value::Null,
            },
            "signal",
        ),
        (ClientMessage::Ping, "ping"),
        (ClientMessage::GetIceServers, "get-ice-servers"),
    ]
}

fn server_samples() -> Vec<(ServerMessage, &'static str)> {
    let s = || "x".to_owned();
    vec![
        (
            ServerMessage::AuthOk {
                participant_id: s(),
                username: s(),
                protocol: 1,
                node_id: s(),
                ice_servers: None,
                ice_servers_expire_at: None,
            },
            "auth-ok",
        ),
        (
            ServerMessage::Joined {
                room_name: s(),
                participant_id: s(),
                participants: vec![],
                publishers: vec![],
            },
            "joined",
        ),
        (ServerMessage::Left { room_name: s() }, "left"),
        (
            ServerMessage::ParticipantJoined {
                room_name: s(),
                participant_id: s(),
                username: s(),
            },
            "participant-joined",
        ),
        (
            ServerMessage::ParticipantLeft {
                room_name: s(),
                participant_id: s(),
            },
            "participant-left",
        ),
        (
            ServerMessage::PublishAnswer {
                room_name: s(),
                answer: s(),
            },
            "publish-answer",
        ),
        (
            ServerMessage::PublishIceCandidate {
                room_name: s(),
                candidate: None,
            },
            "publish-ice-candidate",
        ),
        (
            ServerMessage::NewPublisher {
                room_name: s(),
                publisher_id: s(),
                username: s(),
                tracks: vec![],
            },
            "new-publisher",
        ),
        (
            ServerMessage::PublisherLeft {
                room_name: s(),
                publisher_id: s(),
            },
            "publisher-left",
        ),
        (
            ServerMessage::SubscribeOffer {
                room_name: s(),
                publisher_id: s(),
                offer: s(),
                tracks: vec![],
            },
            "subscribe-offer",
        ),
        (
            ServerMessage::SubscribeIceCandidate {
                room_name: s(),
                candidate: None,
            },
            "subscribe-ice-candidate",
        ),
        (
            ServerMessage::SubscribePrepareAnswer {
                room_name: s(),
                answer: s(),
            },
            "subscribe-prepare-answer",
        ),
        (
            ServerMessage::Chat {
                room_name: s(),
                participant_id: s(),
                username: s(),
                text: s(),
                ts: 1,
            },
            "chat",
        ),
        (
            ServerMessage::Signal {
                room_name: s(),
                from: s(),
                data: Value::Null,
            },
            "signal",
        ),
        (ServerMessage::Pong, "pong"),
        (
            ServerMessage::Reconnect {
                reason: ReconnectReason::Draining,
                retry_after_ms: 1,
            },
            "reconnect",
        ),
        (
            ServerMessage::Kicked {
                room_name: s(),
                reason: KickReason::RoomClosed,
                message: Some(s()),
            },
            "kicked",
        ),
        (ServerMessage::error(ErrorCode::Internal, "x"), "error"),
        (
            ServerMessage::IceServers {
                ice_servers: vec![IceServer {
                    urls: vec!["turn:t:3478".into()],
                    username: Some("1:x".into()),
                    credential: Some("c".into()),
                }],
                ice_servers_expire_at: Some(1),
            },
            "ice-servers",
        ),
    ]
}

/// The serde tag, `type_name()`, `kind()` and the type enum agree for
/// every sample, and the samples cover every type in order.
macro_rules! check_wire_names {
    ($samples:expr, $message:ty, $kind:ty) => {{
        let samples = $samples;
        let kinds: Vec<$kind> = samples.iter().map(|(m, _)| m.kind()).collect();
        assert_eq!(kinds, <$kind>::ALL, "one sample per type, in order");
        for (message, wire) in &samples {
            let json = serde_json::to_value(message).expect("serializes");
            assert_eq!(json["type"], *wire);
            assert_eq!(message.type_name(), *wire);
            assert_eq!(message.kind().as_str(), *wire);
            assert_eq!(message.kind().to_string(), *wire);
            assert_eq!(<$kind>::from_wire(wire), Some(message.kind()));
            let back: $message = serde_json::from_value(json).expect("deserializes");
            assert_eq!(&back, message);
        }
        let names: Vec<&str> = samples.iter().map(|(_, w)| *w).collect();
        assert_eq!(<$kind>::NAMES, names);
    }};
}

/// Every variant spells the name PROTOCOL.md has, the same way everywhere.
#[test]
fn wire_names_agree_everywhere() {
    check_wire_names!(client_samples(), ClientMessage, ClientType);
    check_wire_names!(server_samples(), ServerMessage, ServerType);
    assert_eq!(ClientType::from_wire("auth-ok"), None);
    assert_eq!(ServerType::from_wire("auth"), None);
}
