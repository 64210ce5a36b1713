//! Closing a rheomesh transport without leaking what it is still making.
//!
//! rheomesh fault: `close()` during ICE candidate gathering leaks. webrtc-rs
//! 0.17 gathers in spawned tasks that bind a UDP socket and then add the
//! candidate to the agent without checking whether the agent was closed in
//! between; `close()` only closes the candidates gathered so far. A
//! candidate added after it keeps its socket and a receive task (holding the
//! whole ICE agent) for the life of the process. A `publish-offer` followed
//! at once by `leave` left ~0.6 descriptors and ~0.5 MB per cycle.
//!
//! Workaround: close only once gathering is over (`ice_gathering_state()`
//! is `Complete` only after every gathering task has added its candidate),
//! bounded in time, in a task of its own so that a leave never waits.
//! Actors hand their transports to [`close_when_gathered`] on every close
//! path, and from `Drop` too, so a panicking actor does not leak either.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rheomesh::publish_transport::PublishTransport;
use rheomesh::subscribe_transport::SubscribeTransport;
use rheomesh::transport::Transport;
use webrtc::ice_transport::ice_gathering_state::RTCIceGatheringState;

use super::ports::PortLease;

/// How often the gathering state is looked at.
const POLL: Duration = Duration::from_millis(10);

/// A transport that can be closed.
pub(crate) trait Closable: Transport + Send + Sync + 'static {
    /// rheomesh's `close()`.
    fn close_now(&self) -> impl Future<Output = Result<(), rheomesh::error::Error>> + Send;
}

impl Closable for PublishTransport {
    fn close_now(&self) -> impl Future<Output = Result<(), rheomesh::error::Error>> + Send {
        self.close()
    }
}

impl Closable for SubscribeTransport {
    fn close_now(&self) -> impl Future<Output = Result<(), rheomesh::error::Error>> + Send {
        self.close()
    }
}

/// How long gathering may take before the transport is closed anyway: host
/// candidates only take milliseconds; a STUN or TURN server adds its
/// timeouts (5 s per STUN request, plus name resolution).
pub(crate) fn gathering_limit(has_ice_servers: bool) -> Duration {
    if has_ice_servers {
        Duration::from_secs(12)
    } else {
        Duration::from_secs(2)
    }
}

/// Waits until no candidate gathering runs; false when `limit` passed first.
pub(crate) async fn settle_gathering(t: &impl Transport, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while t.ice_gathering_state() == RTCIceGatheringState::Gathering {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// Closes `t` once its gathering is over (or `limit` passed), in the
/// background, and then returns its media ports (`lease`: its sockets are
/// closed by then, so the next PeerConnection finds them free). Callable
/// from `Drop`: without a runtime (process exit) there is nothing left to
/// leak into.
pub(crate) fn close_when_gathered<T: Closable>(
    t: Arc<T>,
    limit: Duration,
    room: String,
    lease: Option<PortLease>,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let _lease = lease;
        if !settle_gathering(&*t, limit).await {
            tracing::warn!(%room, ?limit, "candidate gathering still running; closing the transport anyway");
        }
        if let Err(e) = t.close_now().await {
            tracing::debug!(%room, "closing transport: {e}");
        }
    });
}
