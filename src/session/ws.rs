//! The WebSocket framing of the HTTP edge: warp's messages to and from the
//! session core's [`FrameIn`]/[`FrameOut`].

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use warp::ws::{Message, WebSocket};

use super::frame::{FrameError, FrameIn, FrameOut};

/// Splits a client's socket into the session's frame sink and stream.
pub fn split(
    ws: WebSocket,
) -> (
    impl Sink<FrameOut, Error = warp::Error> + Unpin + Send + 'static,
    impl Stream<Item = Result<FrameIn, FrameError>> + Unpin + Send + 'static,
) {
    let (sink, stream) = ws.split();
    let sink = sink.with(|f: FrameOut| async move { Ok::<_, warp::Error>(to_message(f)) });
    let stream = stream.map(|r| r.map(from_message).map_err(classify));
    (Box::pin(sink), stream)
}

fn to_message(f: FrameOut) -> Message {
    match f {
        FrameOut::Text(t) => Message::text(t),
        FrameOut::Ping => Message::ping(Vec::<u8>::new()),
        FrameOut::Close { code, reason } => Message::close_with(code, reason),
    }
}

fn from_message(m: Message) -> FrameIn {
    if m.is_text() {
        FrameIn::Text(m.to_str().unwrap_or_default().to_owned())
    } else if m.is_binary() {
        FrameIn::Binary(m.as_bytes().len())
    } else if m.is_ping() {
        FrameIn::Ping(m.as_bytes().len())
    } else if m.is_pong() {
        FrameIn::Pong
    } else {
        FrameIn::Close
    }
}

/// warp reports a frame over its size limit only as text (tungstenite's
/// capacity error), so the text is the only thing to go by.
fn classify(e: warp::Error) -> FrameError {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") || text.contains("size") {
        FrameError::TooBig
    } else {
        FrameError::Other(text)
    }
}
