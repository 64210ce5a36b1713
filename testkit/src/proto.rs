//! A participant's chores in our protocol, on `signaling::client`: sign in,
//! join, a request and its reply (or its `error`), subscribing to every
//! other publisher, and candidates between the wire and webrtc-rs.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use signaling::client::{Client, Received};
use signaling::{CandidateInit, ClientMessage, ClientType, ErrorCode, ServerMessage, ServerType};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;

use crate::rtc::Rtc;

/// An `error` from the server.
#[derive(Debug, thiserror::Error)]
#[error("server error {0}: {1}")]
pub struct ServerError(pub ErrorCode, pub String);

/// Connects with `token` as bearer and waits for `auth-ok` (each step at
/// most `wait`); returns the client and our participant id.
pub async fn sign_in(url: &str, token: &str, wait: Duration) -> Result<(Client, String)> {
    let mut client = tokio::time::timeout(wait, Client::connect(url, Some(token)))
        .await
        .map_err(|_| anyhow!("websocket connect timed out"))??;
    let auth = client.wait_type(ServerType::AuthOk.as_str(), wait).await?;
    match auth.message {
        Some(ServerMessage::AuthOk { participant_id, .. }) => Ok((client, participant_id)),
        _ => bail!("bad auth-ok: {}", auth.raw),
    }
}

/// Joins `room`; returns the ids of the publishers already there.
pub async fn join(client: &mut Client, room: &str, wait: Duration) -> Result<Vec<String>> {
    client
        .send(&ClientMessage::Join {
            room_name: room.to_owned(),
        })
        .await?;
    let joined = expect(client, ServerType::Joined, ClientType::Join, wait).await?;
    match joined.message {
        Some(ServerMessage::Joined { publishers, .. }) => {
            Ok(publishers.into_iter().map(|p| p.publisher_id).collect())
        }
        _ => bail!("bad joined: {}", joined.raw),
    }
}

/// Waits for a message of type `ty`; an `error` for the same request fails
/// with a [`ServerError`].
pub async fn expect(
    client: &mut Client,
    ty: ServerType,
    request: ClientType,
    wait: Duration,
) -> Result<Received> {
    let r = client
        .wait_for(ty.as_str(), wait, |r| {
            r.type_name() == ty.as_str()
                || (r.type_name() == ServerType::Error.as_str()
                    && r.raw.get("requestType").and_then(Value::as_str) == Some(request.as_str()))
        })
        .await?;
    if let Some(ServerMessage::Error { code, message, .. }) = &r.message {
        bail!(ServerError(*code, message.clone()));
    }
    Ok(r)
}

/// Sends an offer message and returns the SDP `answer` of its reply.
pub async fn negotiate(
    client: &mut Client,
    offer: &ClientMessage,
    reply: ServerType,
    wait: Duration,
) -> Result<String> {
    client.send(offer).await?;
    let r = expect(client, reply, offer.kind(), wait).await?;
    r.raw
        .get("answer")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{reply} without an answer: {}", r.raw))
}

/// Which publishers a participant that receives everyone has asked for,
/// and which it has yet to ask for: `new-publisher` adds one,
/// `publisher-left` lets it be asked for again when it comes back.
#[derive(Debug, Default)]
pub struct Subscriptions {
    own: String,
    requested: HashSet<String>,
    pending: Vec<String>,
}

impl Subscriptions {
    /// For participant `own`, who found `publishers` in the room on joining.
    pub fn new(own: &str, publishers: Vec<String>) -> Subscriptions {
        Subscriptions {
            own: own.to_owned(),
            requested: HashSet::new(),
            pending: publishers.into_iter().filter(|p| p != own).collect(),
        }
    }

    /// Takes in a server message (only the two above matter).
    pub fn on_message(&mut self, message: &ServerMessage) {
        match message {
            ServerMessage::NewPublisher { publisher_id, .. }
                if *publisher_id != self.own && !self.requested.contains(publisher_id) =>
            {
                self.pending.push(publisher_id.clone());
            }
            ServerMessage::PublisherLeft { publisher_id, .. } => {
                self.requested.remove(publisher_id);
            }
            _ => {}
        }
    }

    /// Sends a `subscribe-request` for every publisher not asked for yet.
    pub async fn request_pending(
        &mut self,
        client: &mut Client,
        room_name: &Option<String>,
    ) -> Result<()> {
        for p in std::mem::take(&mut self.pending) {
            if self.requested.insert(p.clone()) {
                client
                    .send(&ClientMessage::SubscribeRequest {
                        room_name: room_name.clone(),
                        publisher_id: p,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// A candidate from the wire, as webrtc-rs takes it.
pub fn to_webrtc(c: &CandidateInit) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment.clone(),
    }
}

/// A candidate webrtc-rs gathered, as the wire carries it.
pub fn from_webrtc(c: RTCIceCandidateInit) -> CandidateInit {
    CandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_m_line_index: c.sdp_mline_index,
        username_fragment: c.username_fragment,
    }
}

/// Adds a trickled remote candidate to `pc` if it is UDP on `rtc`'s address
/// (others are dropped: the network rule); a candidate ICE refuses is
/// ignored, as browsers do.
pub async fn add_remote_candidate(rtc: &Rtc, pc: &RTCPeerConnection, c: &CandidateInit) {
    if rtc.candidate_allowed(&c.candidate) {
        let _ = pc.add_ice_candidate(to_webrtc(c)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_skip_self_and_repeats() {
        let mut s = Subscriptions::new("me", vec!["me".into(), "a".into()]);
        assert_eq!(s.pending, ["a"]);
        s.requested.insert("a".into());
        s.pending.clear();
        let new = |id: &str| ServerMessage::NewPublisher {
            room_name: "r".into(),
            publisher_id: id.into(),
            username: id.into(),
            tracks: vec![],
        };
        s.on_message(&new("a"));
        s.on_message(&new("me"));
        assert!(s.pending.is_empty());
        s.on_message(&ServerMessage::PublisherLeft {
            room_name: "r".into(),
            publisher_id: "a".into(),
        });
        s.on_message(&new("a"));
        assert_eq!(s.pending, ["a"]);
    }

    #[test]
    fn candidates_round_trip() {
        let c = CandidateInit {
            candidate: "candidate:1 1 udp 1 10.77.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: Some("u".into()),
        };
        assert_eq!(from_webrtc(to_webrtc(&c)), c);
    }
}
