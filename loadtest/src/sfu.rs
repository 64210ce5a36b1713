//! Driver for rheo-sfu: one signaling WebSocket per participant (the
//! `signaling` crate's client), a publish PeerConnection with the synthetic
//! tracks, a prepared subscribe PeerConnection that receives every other
//! publisher, exactly like the browser client does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use signaling::client::{Client, ClientError, Received};
use signaling::{CandidateInit, ClientMessage, ClientType, ErrorCode, ServerMessage, ServerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::RTCPeerConnection;

use crate::media::Ctx;
use crate::media::{self, Publisher};
use crate::metrics::ClientRec;
use crate::rtc;
use crate::scenario::Spec;

const WAIT: Duration = Duration::from_secs(15);

/// Where our server is and how to get tokens.
#[derive(Debug, Clone)]
pub struct SfuTarget {
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// `host:port` for `/dev/token` when no secret is given.
    pub http_addr: String,
    /// HS256 secret to mint tokens with (the server's `JWT_SECRET`).
    pub secret: Option<String>,
}

impl SfuTarget {
    async fn token(&self, user: &str, room: &str) -> Result<String> {
        match &self.secret {
            Some(secret) => mint(secret, user, room),
            None => dev_token(&self.http_addr, user, room).await,
        }
    }
}

fn mint(secret: &str, user: &str, room: &str) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "sub": user, "name": user, "rooms": [room],
        "canPublish": true, "canSubscribe": true,
        "iat": now, "exp": now + 6 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("mint token")
}

/// `GET /dev/token` of a server in development mode (no secret configured).
async fn dev_token(addr: &str, user: &str, room: &str) -> Result<String> {
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connect {addr} timed out"))?
        .with_context(|| format!("connect {addr}"))?;
    let req = format!(
        "GET /dev/token?user={user}&name={user}&room={room} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .map_err(|_| anyhow!("/dev/token timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body.trim()).map_err(|_| {
        anyhow!(
            "/dev/token gave no JSON (is the server in dev mode? else pass --jwt-secret): {text}"
        )
    })?;
    v.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("/dev/token answer has no token: {body}"))
}

fn candidate(c: &CandidateInit) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment.clone(),
    }
}

/// Waits for a message of type `ty`; an `error` for the same request fails.
async fn expect(client: &mut Client, ty: ServerType, request: ClientType) -> Result<Received> {
    let r = client
        .wait_for(ty.as_str(), WAIT, |r| {
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
async fn negotiate(
    client: &mut Client,
    offer: &ClientMessage,
    reply: ServerType,
) -> Result<String> {
    client.send(offer).await?;
    let r = expect(client, reply, offer.kind()).await?;
    r.raw
        .get("answer")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{reply} without an answer: {}", r.raw))
}

/// An `error` from the server.
#[derive(Debug, thiserror::Error)]
#[error("server error {0}: {1}")]
pub struct ServerError(pub ErrorCode, pub String);

/// Runs one participant until `ctx.stop`.
pub async fn run(target: &SfuTarget, room: &str, spec: &Spec, ctx: &Ctx, rec: Arc<ClientRec>) {
    let result = session(target, room, spec, ctx, &rec).await;
    if let Err(e) = result {
        match e.downcast_ref::<ServerError>() {
            Some(ServerError(ErrorCode::RoomFull | ErrorCode::Draining, _)) => {
                rec.refused(format!("{e:#}"))
            }
            _ => rec.failed(format!("{e:#}")),
        }
    }
    rec.ended();
}

async fn session(
    target: &SfuTarget,
    room: &str,
    spec: &Spec,
    ctx: &Ctx,
    rec: &Arc<ClientRec>,
) -> Result<()> {
    let token = target.token(&spec.name, room).await?;
    let mut client = tokio::time::timeout(WAIT, Client::connect(&target.ws_url, Some(&token)))
        .await
        .map_err(|_| anyhow!("websocket connect timed out"))??;
    let auth = client.wait_type(ServerType::AuthOk.as_str(), WAIT).await?;
    let own_id = match auth.message {
        Some(ServerMessage::AuthOk { participant_id, .. }) => participant_id,
        _ => bail!("bad auth-ok: {}", auth.raw),
    };
    client
        .send(&ClientMessage::Join {
            room_name: room.to_owned(),
        })
        .await?;
    let joined = expect(&mut client, ServerType::Joined, ClientType::Join).await?;
    let publishers = match joined.message {
        Some(ServerMessage::Joined { publishers, .. }) => publishers,
        _ => bail!("bad joined: {}", joined.raw),
    };
    let room_name = Some(room.to_owned());

    let mut sub_pc: Option<Arc<RTCPeerConnection>> = None;
    if spec.subscribe {
        let pc = ctx.rtc.peer().await?;
        media::receive(&pc, ctx.metrics.clone(), rec.clone(), ctx.stop.clone());
        if ctx.prepare {
            let _dc = pc.create_data_channel("prepare", None).await?;
            let offer = rtc::offer(&pc).await?;
            let prepare = ClientMessage::SubscribePrepare {
                room_name: room_name.clone(),
                offer,
            };
            let answer =
                negotiate(&mut client, &prepare, ServerType::SubscribePrepareAnswer).await?;
            rtc::accept_answer(&ctx.rtc, &pc, &answer).await?;
        }
        sub_pc = Some(pc);
    }

    let mut pub_pc: Option<Arc<RTCPeerConnection>> = None;
    if let Some(index) = spec.publish {
        let pc = ctx.rtc.peer().await?;
        Publisher::attach(&pc, index, &spec.name)
            .await?
            .send_when_connected(&pc, ctx);
        let offer = rtc::offer(&pc).await?;
        let publish = ClientMessage::PublishOffer {
            room_name: room_name.clone(),
            offer,
        };
        let answer = negotiate(&mut client, &publish, ServerType::PublishAnswer).await?;
        rtc::accept_answer(&ctx.rtc, &pc, &answer).await?;
        pub_pc = Some(pc);
    }
    rec.joined();

    let mut requested: HashSet<String> = HashSet::new();
    let mut pending: Vec<String> = publishers
        .into_iter()
        .map(|p| p.publisher_id)
        .filter(|p| *p != own_id)
        .collect();
    let mut stop = ctx.stop.clone();
    let mut offers = 0u32;
    let result = loop {
        if sub_pc.is_some() {
            for p in pending.drain(..) {
                if requested.insert(p.clone()) {
                    client
                        .send(&ClientMessage::SubscribeRequest {
                            room_name: room_name.clone(),
                            publisher_id: p,
                        })
                        .await?;
                }
            }
        }
        let r = tokio::select! {
            _ = stop.wait_for(|s| *s) => break Ok(()),
            r = client.recv(Duration::from_secs(3600)) => r,
        };
        let r = match r {
            Ok(r) => r,
            Err(ClientError::Timeout(..)) => continue,
            Err(e) => break Err(anyhow!(e)),
        };
        match r.message {
            Some(ServerMessage::NewPublisher { publisher_id, .. })
                if publisher_id != own_id && !requested.contains(&publisher_id) =>
            {
                pending.push(publisher_id);
            }
            Some(ServerMessage::PublisherLeft { publisher_id, .. }) => {
                requested.remove(&publisher_id);
            }
            Some(ServerMessage::SubscribeOffer {
                offer,
                publisher_id,
                ..
            }) => {
                let Some(pc) = &sub_pc else { continue };
                let answer = rtc::answer(&ctx.rtc, pc, &offer).await?;
                offers += 1;
                client
                    .send(&ClientMessage::SubscribeAnswer {
                        room_name: room_name.clone(),
                        publisher_id: Some(publisher_id),
                        answer,
                    })
                    .await?;
            }
            Some(ServerMessage::SubscribeIceCandidate {
                candidate: Some(c), ..
            }) => {
                if let Some(pc) = &sub_pc {
                    if ctx.rtc.candidate_allowed(&c.candidate) {
                        let _ = pc.add_ice_candidate(candidate(&c)).await;
                    }
                }
            }
            Some(ServerMessage::PublishIceCandidate {
                candidate: Some(c), ..
            }) => {
                if let Some(pc) = &pub_pc {
                    if ctx.rtc.candidate_allowed(&c.candidate) {
                        let _ = pc.add_ice_candidate(candidate(&c)).await;
                    }
                }
            }
            Some(ServerMessage::Reconnect { reason, .. }) => {
                break Err(anyhow!("server asked to reconnect: {reason:?}"));
            }
            // A refused or failed subscription costs that publisher's
            // media (counted as loss), not the session: keep receiving the
            // others, as a real client would.
            Some(ServerMessage::Error {
                code,
                message,
                request_type: Some(rt),
                ..
            }) if rt == ClientType::SubscribeRequest.as_str() && code != ErrorCode::RoomFull => {
                rec.failed(format!("{}", ServerError(code, message)));
            }
            Some(ServerMessage::Error { code, message, .. }) => {
                break Err(anyhow!(ServerError(code, message)));
            }
            _ => {}
        }
    };
    rec.ended();
    if let (Some(pc), false) = (&sub_pc, rec.has_media()) {
        // Say why, for the report: where the subscribe connection stopped.
        rec.failed(format!(
            "no media: subscribe PeerConnection {}, ICE {}, signaling {}, {} offers answered",
            pc.connection_state(),
            pc.ice_connection_state(),
            pc.signaling_state(),
            offers
        ));
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        client.send(&ClientMessage::Leave {
            room_name: room.to_owned(),
        }),
    )
    .await;
    for pc in [pub_pc, sub_pc].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(5), pc.close()).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
    result
}
