//! One churn participant: joins a room, subscribes to everyone, publishes,
//! renegotiates (unpublishes and publishes again on a fresh
//! PeerConnection), unsubscribes from a publisher and subscribes again,
//! and ends in one of three ways: `leave`, the WebSocket dropped without
//! a word, or both PeerConnections closed without a message first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Serialize;
use sfu_testkit::proto::{self, Subscriptions};
use sfu_testkit::rtc;
use signaling::client::{Client, ClientError};
use signaling::{ClientMessage, ServerMessage, ServerType};
use tokio::time::Instant;
use webrtc::peer_connection::RTCPeerConnection;

use crate::media::{self, Ctx, Publisher};
use crate::metrics::ClientRec;
use crate::sfu::SfuTarget;

const WAIT: Duration = Duration::from_secs(15);

/// How a churn session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// `leave`, PeerConnections closed, WebSocket closed.
    Leave,
    /// The WebSocket dropped (no `leave`, no close frame); the
    /// PeerConnections are closed afterwards.
    DropSocket,
    /// Both PeerConnections closed without a message, the WebSocket kept
    /// open for a few seconds (the server must notice by itself), then
    /// `leave`.
    ClosePeerConnections,
}

impl End {
    /// The n-th session's ending: half leave, a quarter each abrupt.
    pub fn nth(n: u64) -> End {
        match n % 4 {
            0 | 1 => End::Leave,
            2 => End::DropSocket,
            _ => End::ClosePeerConnections,
        }
    }
}

/// What one churn session does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Name (token subject).
    pub name: String,
    /// Publisher indexes of its first and second publication.
    pub publish: (u32, u32),
    /// How long it stays.
    pub lifetime: Duration,
    /// How it ends.
    pub end: End,
}

/// Counts of what the churn sessions did.
#[derive(Debug, Default)]
pub struct Ops {
    /// Sessions started.
    pub sessions: AtomicU64,
    /// Joins that got `joined`.
    pub joins: AtomicU64,
    /// `publish-answer`s received (first publications and republications).
    pub publishes: AtomicU64,
    /// `unpublish` sent.
    pub unpublishes: AtomicU64,
    /// `subscribe-offer`s answered.
    pub subscribe_offers: AtomicU64,
    /// `unsubscribe` sent.
    pub unsubscribes: AtomicU64,
    /// `subscribe-request`s sent again after an unsubscribe.
    pub resubscribes: AtomicU64,
    /// Sessions ended with `leave`.
    pub leaves: AtomicU64,
    /// Sessions ended by dropping the WebSocket.
    pub socket_drops: AtomicU64,
    /// Sessions whose PeerConnections were closed without a message.
    pub pc_closes: AtomicU64,
    /// Sessions that failed (an error before their planned end).
    pub failed: AtomicU64,
    /// Requests the server answered with an `error` that a session survived
    /// (e.g. a resubscription to a publisher that just left).
    pub refused_requests: AtomicU64,
}

/// [`Ops`] as numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpsReport {
    /// See [`Ops`].
    pub sessions: u64,
    /// See [`Ops`].
    pub joins: u64,
    /// See [`Ops`].
    pub publishes: u64,
    /// See [`Ops`].
    pub unpublishes: u64,
    /// See [`Ops`].
    pub subscribe_offers: u64,
    /// See [`Ops`].
    pub unsubscribes: u64,
    /// See [`Ops`].
    pub resubscribes: u64,
    /// See [`Ops`].
    pub leaves: u64,
    /// See [`Ops`].
    pub socket_drops: u64,
    /// See [`Ops`].
    pub pc_closes: u64,
    /// See [`Ops`].
    pub failed: u64,
    /// See [`Ops`].
    pub refused_requests: u64,
}

impl Ops {
    /// The counts now.
    pub fn report(&self) -> OpsReport {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OpsReport {
            sessions: g(&self.sessions),
            joins: g(&self.joins),
            publishes: g(&self.publishes),
            unpublishes: g(&self.unpublishes),
            subscribe_offers: g(&self.subscribe_offers),
            unsubscribes: g(&self.unsubscribes),
            resubscribes: g(&self.resubscribes),
            leaves: g(&self.leaves),
            socket_drops: g(&self.socket_drops),
            pc_closes: g(&self.pc_closes),
            failed: g(&self.failed),
            refused_requests: g(&self.refused_requests),
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Runs one session to its end (or until `ctx.stop`, then ends as planned).
pub async fn run(
    target: &SfuTarget,
    room: &str,
    plan: &Plan,
    ctx: &Ctx,
    rec: Arc<ClientRec>,
    ops: &Ops,
) {
    inc(&ops.sessions);
    if let Err(e) = session(target, room, plan, ctx, &rec, ops).await {
        inc(&ops.failed);
        rec.failed(format!("{e:#}"));
    }
    rec.ended();
}

/// A publication: its PeerConnection.
async fn publish(
    client: &mut Client,
    ctx: &Ctx,
    room: &Option<String>,
    index: u32,
    stream: &str,
) -> Result<Arc<RTCPeerConnection>> {
    let pc = ctx.rtc.peer().await?;
    Publisher::attach(&pc, index, stream)
        .await?
        .send_when_connected(&pc, ctx);
    let offer = rtc::offer(&pc).await?;
    let msg = ClientMessage::PublishOffer {
        room_name: room.clone(),
        offer,
    };
    let answer = proto::negotiate(client, &msg, ServerType::PublishAnswer, WAIT).await?;
    rtc::accept_answer(&ctx.rtc, &pc, &answer).await?;
    Ok(pc)
}

async fn close_pc(pc: Option<Arc<RTCPeerConnection>>) {
    if let Some(pc) = pc {
        let _ = tokio::time::timeout(Duration::from_secs(5), pc.close()).await;
    }
}

/// Steps of a session, at fractions of its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Unsubscribe,
    Republish,
    Resubscribe,
    End,
}

async fn session(
    target: &SfuTarget,
    room: &str,
    plan: &Plan,
    ctx: &Ctx,
    rec: &Arc<ClientRec>,
    ops: &Ops,
) -> Result<()> {
    let token = target.token(&plan.name, room).await?;
    let (mut client, own_id) = proto::sign_in(&target.ws_url, &token, WAIT).await?;
    let publishers = proto::join(&mut client, room, WAIT).await?;
    inc(&ops.joins);
    let room_name = Some(room.to_owned());
    let start = Instant::now();

    let sub_pc = ctx.rtc.peer().await?;
    media::receive(&sub_pc, ctx.metrics.clone(), rec.clone(), ctx.stop.clone());
    let _dc = sub_pc.create_data_channel("prepare", None).await?;
    let offer = rtc::offer(&sub_pc).await?;
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
    rtc::accept_answer(&ctx.rtc, &sub_pc, &answer).await?;
    let mut sub_pc = Some(sub_pc);

    let mut pub_pc = Some(publish(&mut client, ctx, &room_name, plan.publish.0, &plan.name).await?);
    inc(&ops.publishes);
    rec.joined();

    let mut subscriptions = Subscriptions::new(&own_id, publishers.clone());
    // Publishers it subscribed to (for the unsubscribe step).
    let mut others: Vec<String> = publishers.into_iter().filter(|p| *p != own_id).collect();
    let mut unsubscribed: Option<String> = None;
    let at = |f: f64| start + plan.lifetime.mul_f64(f);
    let mut steps = vec![
        (at(0.3), Step::Unsubscribe),
        (at(0.45), Step::Republish),
        (at(0.6), Step::Resubscribe),
        (at(1.0), Step::End),
    ];
    let mut stop = ctx.stop.clone();
    loop {
        subscriptions
            .request_pending(&mut client, &room_name)
            .await?;
        let (when, step) = steps[0];
        let r = tokio::select! {
            _ = tokio::time::sleep_until(when) => None,
            _ = stop.wait_for(|s| *s) => break,
            r = client.recv(Duration::from_secs(3600)) => Some(r),
        };
        let Some(r) = r else {
            steps.remove(0);
            match step {
                Step::Unsubscribe => {
                    if let Some(p) = others.first().cloned() {
                        client
                            .send(&ClientMessage::Unsubscribe {
                                room_name: room_name.clone(),
                                publisher_id: p.clone(),
                            })
                            .await?;
                        inc(&ops.unsubscribes);
                        unsubscribed = Some(p);
                    }
                }
                Step::Republish => {
                    client
                        .send(&ClientMessage::Unpublish {
                            room_name: room_name.clone(),
                        })
                        .await?;
                    inc(&ops.unpublishes);
                    close_pc(pub_pc.take()).await;
                    let stream = format!("{}-again", plan.name);
                    pub_pc =
                        Some(publish(&mut client, ctx, &room_name, plan.publish.1, &stream).await?);
                    inc(&ops.publishes);
                }
                Step::Resubscribe => {
                    if let Some(p) = unsubscribed.take() {
                        client
                            .send(&ClientMessage::SubscribeRequest {
                                room_name: room_name.clone(),
                                publisher_id: p,
                            })
                            .await?;
                        inc(&ops.resubscribes);
                    }
                }
                Step::End => break,
            }
            continue;
        };
        let r = match r {
            Ok(r) => r,
            Err(ClientError::Timeout(..)) => continue,
            Err(e) => return Err(anyhow!(e)),
        };
        if let Some(m) = &r.message {
            subscriptions.on_message(m);
        }
        match r.message {
            Some(ServerMessage::NewPublisher { publisher_id, .. })
                if publisher_id != own_id && !others.contains(&publisher_id) =>
            {
                others.push(publisher_id);
            }
            Some(ServerMessage::PublisherLeft { publisher_id, .. }) => {
                others.retain(|p| *p != publisher_id);
            }
            Some(ServerMessage::SubscribeOffer {
                offer,
                publisher_id,
                ..
            }) => {
                let Some(pc) = &sub_pc else { continue };
                let answer = rtc::answer(&ctx.rtc, pc, &offer).await?;
                client
                    .send(&ClientMessage::SubscribeAnswer {
                        room_name: room_name.clone(),
                        publisher_id: Some(publisher_id),
                        answer,
                    })
                    .await?;
                inc(&ops.subscribe_offers);
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
                return Err(anyhow!("server asked to reconnect: {reason:?}"));
            }
            // A request that raced with a publisher leaving (subscribe to
            // one that is gone): the session goes on, as a client would.
            Some(ServerMessage::Error {
                request_type: Some(_),
                ..
            }) => inc(&ops.refused_requests),
            Some(ServerMessage::Error { code, message, .. }) => {
                return Err(anyhow!(proto::ServerError(code, message)));
            }
            _ => {}
        }
    }
    match plan.end {
        End::Leave => {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                client.send(&ClientMessage::Leave {
                    room_name: room.to_owned(),
                }),
            )
            .await;
            inc(&ops.leaves);
            close_pc(pub_pc.take()).await;
            close_pc(sub_pc.take()).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
        }
        End::DropSocket => {
            // No close frame, no leave: the TCP connection just ends.
            drop(client);
            inc(&ops.socket_drops);
            tokio::time::sleep(Duration::from_secs(1)).await;
            close_pc(pub_pc.take()).await;
            close_pc(sub_pc.take()).await;
        }
        End::ClosePeerConnections => {
            close_pc(pub_pc.take()).await;
            close_pc(sub_pc.take()).await;
            inc(&ops.pc_closes);
            // Keep the socket (and read what the server says) while it
            // notices by itself, then leave.
            let until = Instant::now() + Duration::from_secs(4);
            while let Ok(Ok(_)) = tokio::time::timeout_at(until, client.recv(WAIT)).await {}
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                client.send(&ClientMessage::Leave {
                    room_name: room.to_owned(),
                }),
            )
            .await;
            inc(&ops.leaves);
            let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
        }
    }
    Ok(())
}
