//! Driver for rheo-sfu: one signaling WebSocket per participant (the
//! `signaling` crate's client), a publish PeerConnection with the synthetic
//! tracks, a prepared subscribe PeerConnection that receives every other
//! publisher, exactly like the browser client does.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;
use sfu_testkit::proto::{self, ServerError, Subscriptions};
use sfu_testkit::{http, rtc};
use signaling::client::ClientError;
use signaling::{ClientMessage, ClientType, ErrorCode, ServerMessage, ServerType};
use webrtc::peer_connection::RTCPeerConnection;

use crate::media::Ctx;
use crate::media::{self, Publisher};
use crate::metrics::ClientRec;
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
    pub async fn token(&self, user: &str, room: &str) -> Result<String> {
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
    let path = format!("/dev/token?user={user}&name={user}&room={room}");
    let (status, body) = http::get(addr, &path, WAIT).await?;
    let v: Value = serde_json::from_str(body.trim()).map_err(|_| {
        anyhow!(
            "/dev/token gave no JSON (is the server in dev mode? else pass --jwt-secret): {status} {body}"
        )
    })?;
    v.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("/dev/token answer has no token: {body}"))
}

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
    let (mut client, own_id) = proto::sign_in(&target.ws_url, &token, WAIT).await?;
    let publishers = proto::join(&mut client, room, WAIT).await?;
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
            let answer = proto::negotiate(
                &mut client,
                &prepare,
                ServerType::SubscribePrepareAnswer,
                WAIT,
            )
            .await?;
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
        let answer =
            proto::negotiate(&mut client, &publish, ServerType::PublishAnswer, WAIT).await?;
        rtc::accept_answer(&ctx.rtc, &pc, &answer).await?;
        pub_pc = Some(pc);
    }
    rec.joined();

    let mut subscriptions = Subscriptions::new(&own_id, publishers);
    let mut stop = ctx.stop.clone();
    let mut offers = 0u32;
    let result = loop {
        if sub_pc.is_some() {
            subscriptions
                .request_pending(&mut client, &room_name)
                .await?;
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
        if let Some(m) = &r.message {
            subscriptions.on_message(m);
        }
        match r.message {
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
                    proto::add_remote_candidate(&ctx.rtc, pc, &c).await;
                }
            }
            Some(ServerMessage::PublishIceCandidate {
                candidate: Some(c), ..
            }) => {
                if let Some(pc) = &pub_pc {
                    proto::add_remote_candidate(&ctx.rtc, pc, &c).await;
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
