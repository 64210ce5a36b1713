//! The owner's side of a forwarded session: the same session logic as for a
//! client socket, over the forwarder's channels instead of a WebSocket.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::mpsc;

use super::frame::{FrameError, FrameIn, FrameOut};
use super::{run_over, Auth};
use crate::cluster::forward::{Forwarder, Inbound, RemoteOpen};
use crate::AppState;

/// Runs every session that other nodes forward to this one, until the
/// forwarder stops.
pub async fn serve(state: Arc<AppState>, mut opens: mpsc::Receiver<RemoteOpen>) {
    while let Some(open) = opens.recv().await {
        let Some(fwd) = state.cluster.forwarder().cloned() else {
            return;
        };
        let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
            fwd.close(
                &open.edge,
                &open.session,
                Some(1013),
                "connection limit reached on the room's node",
            );
            continue;
        };
        tracing::debug!(session = %open.session, edge = %open.edge, "forwarded session opened");
        let sink = RemoteSink {
            fwd,
            edge: open.edge,
            session: open.session,
            seq: 0,
            closed: false,
        };
        let stream = inbound_stream(open.inbound);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            run_over(sink, stream, state, Auth::Forwarded(open.grants), permit).await;
        });
    }
}

/// Frames from the edge; the end of the session (the edge closed it, the
/// edge node is gone, the channel closed) is one error item.
fn inbound_stream(
    rx: mpsc::Receiver<Inbound>,
) -> Pin<Box<dyn Stream<Item = Result<FrameIn, FrameError>> + Send>> {
    futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Inbound::Frame(text)) => Some((Ok(FrameIn::Text(text)), Some(rx))),
            Some(Inbound::Closed { reason, .. }) => Some((
                Err(FrameError::Other(format!("edge closed: {reason}"))),
                None,
            )),
            Some(Inbound::PeerLost(why)) => {
                Some((Err(FrameError::Other(format!("edge lost: {why}"))), None))
            }
            None => Some((
                Err(FrameError::Other("forwarding stopped".to_owned())),
                None,
            )),
        }
    })
    .boxed()
}

/// Frames the session writes, sent to the edge node. A forwarded session
/// sends no keepalive pings (the edge keeps its own with the client).
struct RemoteSink {
    fwd: Arc<Forwarder>,
    edge: String,
    session: String,
    seq: u64,
    closed: bool,
}

impl RemoteSink {
    fn close_once(&mut self, code: Option<u16>, reason: &str) {
        if !self.closed {
            self.closed = true;
            self.fwd.close(&self.edge, &self.session, code, reason);
        }
    }
}

impl Sink<FrameOut> for RemoteSink {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: FrameOut) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if this.closed {
            return Ok(());
        }
        match frame {
            FrameOut::Text(text) => {
                this.fwd.frame(&this.edge, &this.session, this.seq, text);
                this.seq += 1;
            }
            FrameOut::Close { code, reason } => this.close_once(Some(code), &reason),
            // Not sent on this transport (no keepalive); nothing to forward.
            FrameOut::Ping => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut()
            .close_once(None, "session ended on the room's node");
        Poll::Ready(Ok(()))
    }
}
