//! Sessions that another node routes here (its client is connected there,
//! the room is held here): the framing of a [`Link`] for the session core,
//! as [`super::ws`] is for a client's WebSocket.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream, StreamExt};
use signaling::close;
use tokio::sync::mpsc;

use super::frame::{FrameError, FrameIn, FrameOut};
use super::{run_over, Auth};
use crate::routing::{Inbound, Incoming, Link, LinkSink};
use crate::AppState;

/// Runs every session other nodes route here, until the router stops.
pub async fn serve(state: Arc<AppState>, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(Incoming { grants, link, key }) = incoming.recv().await {
        let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
            let Link { mut sink, .. } = link;
            sink.close(
                Some(close::TRY_AGAIN_LATER),
                "connection limit reached on the room's node",
            );
            continue;
        };
        tracing::debug!(session = %key, "routed session opened");
        let (sink, stream) = split(link);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            run_over(sink, stream, state, Auth::Forwarded(grants), permit).await;
        });
    }
}

/// Frames from the client's node, as the session core reads them.
type FramesIn = Pin<Box<dyn Stream<Item = Result<FrameIn, FrameError>> + Send>>;

/// A link as the session's frame sink and stream.
fn split(link: Link) -> (LinkFrames, FramesIn) {
    (LinkFrames(link.sink), frames_in(link.source))
}

/// Frames from the client's node; the end of the session (that node
/// closed it or is gone, or routing stopped) is one error item.
fn frames_in(rx: mpsc::Receiver<Inbound>) -> FramesIn {
    futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let end = match rx.recv().await {
            Some(Inbound::Frame(text)) => return Some((Ok(FrameIn::Text(text)), Some(rx))),
            Some(Inbound::Closed { reason, .. }) => format!("client's node closed: {reason}"),
            Some(Inbound::PeerLost(why)) => format!("client's node lost: {why}"),
            None => "routing stopped".to_owned(),
        };
        Some((Err(FrameError::Other(end)), None))
    })
    .boxed()
}

/// Frames the session writes, sent along the link. A routed session sends
/// no keepalive pings (the client's node keeps its own with the client).
struct LinkFrames(Box<dyn LinkSink>);

impl Sink<FrameOut> for LinkFrames {
    type Error = Infallible;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: FrameOut) -> Result<(), Self::Error> {
        let sink = &mut self.get_mut().0;
        match frame {
            FrameOut::Text(text) => sink.frame(text),
            FrameOut::Close { code, reason } => sink.close(Some(code), &reason),
            // Not sent on this transport (no keepalive); nothing to pass on.
            FrameOut::Ping => {}
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut()
            .0
            .close(None, "session ended on the room's node");
        Poll::Ready(Ok(()))
    }
}
