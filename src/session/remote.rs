//! The owner's side of a forwarded session: the same session logic as for a
//! client socket, over the forwarder's channels instead of a WebSocket.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream, StreamExt};
use tokio::sync::mpsc;
use warp::ws::Message;

use super::{run_over, Auth, ReadError};
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
        let (pong_tx, pong_rx) = mpsc::unbounded_channel();
        let sink = RemoteSink {
            fwd,
            edge: open.edge,
            session: open.session,
            seq: 0,
            closed: false,
            pongs: pong_tx,
        };
        let inbound = inbound_stream(open.inbound);
        let pongs = futures_util::stream::unfold(pong_rx, |mut rx| async move {
            rx.recv().await.map(|m| (Ok::<_, Ended>(m), rx))
        })
        .boxed();
        // The inbound stream ends with an error item, which ends the session
        // even though the pong stream is still open.
        let stream = futures_util::stream::select(inbound, pongs);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            run_over(sink, stream, state, Auth::Forwarded(open.grants), permit).await;
        });
    }
}

/// Frames from the edge as WebSocket messages; the end of the session (the
/// edge closed it, the edge node is gone, the channel closed) is one error
/// item.
fn inbound_stream(
    rx: mpsc::Receiver<Inbound>,
) -> Pin<Box<dyn Stream<Item = Result<Message, Ended>> + Send>> {
    futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Inbound::Frame(text)) => Some((Ok(Message::text(text)), Some(rx))),
            Some(Inbound::Closed { reason, .. }) => Some((Err(Ended::EdgeClosed(reason)), None)),
            Some(Inbound::PeerLost(why)) => Some((Err(Ended::EdgeLost(why)), None)),
            None => Some((Err(Ended::Stopped), None)),
        }
    })
    .boxed()
}

/// How the inbound stream of a forwarded session ends.
#[derive(Debug)]
enum Ended {
    /// The edge closed the session.
    EdgeClosed(String),
    /// The edge node is gone, or frames were lost on the way.
    EdgeLost(String),
    /// The forwarder stopped.
    Stopped,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::EdgeClosed(reason) => write!(f, "edge closed: {reason}"),
            Ended::EdgeLost(why) => write!(f, "edge lost: {why}"),
            Ended::Stopped => f.write_str("forwarding stopped"),
        }
    }
}

impl ReadError for Ended {
    /// Never: the edge applies the frame limit to its client's socket and
    /// only forwards frames within it.
    fn frame_too_big(&self) -> bool {
        false
    }
}

/// Messages the session writes, sent to the edge node. Pings are answered
/// here (the edge keeps its own WebSocket pings with the client).
struct RemoteSink {
    fwd: Arc<Forwarder>,
    edge: String,
    session: String,
    seq: u64,
    closed: bool,
    pongs: mpsc::UnboundedSender<Message>,
}

impl RemoteSink {
    fn close_once(&mut self, code: Option<u16>, reason: &str) {
        if !self.closed {
            self.closed = true;
            self.fwd.close(&self.edge, &self.session, code, reason);
        }
    }
}

impl Sink<Message> for RemoteSink {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Self::Error> {
        let this = self.get_mut();
        if this.closed {
            return Ok(());
        }
        if msg.is_ping() {
            let _ = this.pongs.send(Message::pong(msg.into_bytes()));
        } else if msg.is_close() {
            let (code, reason) = msg
                .close_frame()
                .map_or((None, String::new()), |(c, r)| (Some(c), r.to_owned()));
            this.close_once(code, &reason);
        } else if let Ok(text) = msg.to_str() {
            this.fwd
                .frame(&this.edge, &this.session, this.seq, text.to_owned());
            this.seq += 1;
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
