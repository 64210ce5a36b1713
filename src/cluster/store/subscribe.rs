//! The subscription to a node's pub/sub channel, kept alive across Redis
//! restarts by its own task.

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, RedisResult};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Key, SUB_BACKOFF_MAX, SUB_BACKOFF_MIN, SUB_PING_EVERY, SUB_TIMEOUT};

/// Subscribes to node `node_id`'s channel (`P:chan:{node_id}` under `prefix`)
/// for as long as the returned receiver lives, across Redis restarts.
///
/// Returns the payloads, the connection state (`true` while subscribed), and
/// the task doing the work. The task reconnects with a bounded backoff (50 ms
/// doubling to 2 s) and pings Redis every 2 s to notice a connection that died
/// silently. It ends when the payload receiver is dropped, when aborted, or at
/// once (closing the channel) if `url` is not a valid Redis URL.
///
/// Every `false` on the state channel means messages may have been lost:
/// Redis keeps nothing for an absent subscriber. If the payload channel is
/// full, new payloads are dropped with a warning rather than piling up in
/// memory behind a stalled consumer; `buffer` (at least 1) sets its size.
///
/// Must be called within a Tokio runtime.
pub fn subscribe_node_channel(
    url: String,
    prefix: String,
    node_id: String,
    buffer: usize,
) -> (
    mpsc::Receiver<Vec<u8>>,
    watch::Receiver<bool>,
    JoinHandle<()>,
) {
    let (payload_tx, payload_rx) = mpsc::channel(buffer.max(1));
    let (state_tx, state_rx) = watch::channel(false);
    let channel = Key::Chan(&node_id).build(&prefix);
    let task = tokio::spawn(async move {
        match Client::open(url.as_str()) {
            Ok(client) => keep_subscribed(client, channel, payload_tx, state_tx).await,
            // Not the URL itself in the log: it can carry a password.
            Err(e) => tracing::error!(error = %e, "invalid REDIS_URL, not subscribing"),
        }
    });
    (payload_rx, state_rx, task)
}

/// Why a subscription stopped.
enum Ended {
    /// Nobody reads the payloads any more: the task is done.
    ReceiverGone,
    /// The connection failed: subscribe again.
    Lost(String),
}

async fn keep_subscribed(
    client: Client,
    channel: String,
    payloads: mpsc::Sender<Vec<u8>>,
    state: watch::Sender<bool>,
) {
    let mut backoff = SUB_BACKOFF_MIN;
    let mut failures: u32 = 0;
    loop {
        let attempt = tokio::select! {
            () = payloads.closed() => return,
            attempt = tokio::time::timeout(SUB_TIMEOUT, open_subscription(&client, &channel)) => attempt,
        };
        match attempt {
            Ok(Ok((sink, stream))) => {
                tracing::info!(%channel, "subscribed to node channel");
                state.send_replace(true);
                backoff = SUB_BACKOFF_MIN;
                failures = 0;
                let ended = forward(sink, stream, &payloads).await;
                state.send_replace(false);
                match ended {
                    Ended::ReceiverGone => return,
                    Ended::Lost(why) => {
                        tracing::warn!(%channel, reason = %why, "node channel lost, resubscribing");
                    }
                }
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {SUB_TIMEOUT:?}"),
                };
                failures = failures.saturating_add(1);
                // One warning per outage; the retries behind it go to debug.
                if failures == 1 {
                    tracing::warn!(%channel, error = %why, "cannot subscribe to node channel, retrying");
                } else {
                    tracing::debug!(%channel, error = %why, failures, "still cannot subscribe");
                }
            }
        }
        tokio::select! {
            () = payloads.closed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(SUB_BACKOFF_MAX);
    }
}

async fn open_subscription(
    client: &Client,
    channel: &str,
) -> RedisResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = client.get_async_pubsub().await?;
    // Returns once Redis confirmed the subscription: from here on nothing
    // published to the channel is missed.
    pubsub.subscribe(channel).await?;
    Ok(pubsub.split())
}

async fn forward(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    payloads: &mpsc::Sender<Vec<u8>>,
) -> Ended {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + SUB_PING_EVERY, SUB_PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dropped: u64 = 0;
    loop {
        tokio::select! {
            () = payloads.closed() => return Ended::ReceiverGone,
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Ended::Lost("connection closed".into());
                };
                match payloads.try_send(msg.get_payload_bytes().to_vec()) {
                    Ok(()) if dropped > 0 => {
                        tracing::warn!(dropped, "node channel consumer caught up");
                        dropped = 0;
                    }
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        if dropped == 0 {
                            tracing::warn!("node channel consumer is behind, dropping messages");
                        }
                        dropped += 1;
                    }
                    Err(TrySendError::Closed(_)) => return Ended::ReceiverGone,
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(SUB_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(format!("ping failed: {e}")),
                    Err(_) => return Ended::Lost(format!("no answer to ping within {SUB_TIMEOUT:?}")),
                }
            }
        }
    }
}
