//! Frames as the session core sees them, whatever carries them: a client's
//! WebSocket ([`super::ws`]) or a session forwarded from another node
//! ([`super::remote`]).

/// A frame from the client.
#[derive(Debug)]
pub enum FrameIn {
    /// A text frame (a JSON message).
    Text(String),
    /// A binary frame of this many bytes (not part of the protocol).
    Binary(usize),
    /// A ping of this many payload bytes (the transport answers it).
    Ping(usize),
    /// A pong (an answer to our keepalive ping).
    Pong,
    /// The client's close frame.
    Close,
}

impl FrameIn {
    /// Payload bytes of a frame that counts against the frame limit and the
    /// message rate (text, binary, ping); `None` for control frames that do
    /// not.
    pub fn data_len(&self) -> Option<usize> {
        match self {
            FrameIn::Text(t) => Some(t.len()),
            FrameIn::Binary(n) | FrameIn::Ping(n) => Some(*n),
            FrameIn::Pong | FrameIn::Close => None,
        }
    }
}

/// Why a transport stopped delivering frames.
#[derive(Debug)]
pub enum FrameError {
    /// The client sent a frame over the size limit.
    TooBig,
    /// Anything else (the socket broke, the forwarding stopped).
    Other(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooBig => f.write_str("frame over the size limit"),
            FrameError::Other(why) => f.write_str(why),
        }
    }
}

/// A frame for the client.
#[derive(Debug, Clone)]
pub enum FrameOut {
    /// A text frame (a JSON message).
    Text(String),
    /// A keepalive ping (only on transports that ask for keepalive).
    Ping,
    /// Our close frame.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason.
        reason: String,
    },
}

impl FrameOut {
    /// Payload bytes, for the outbound byte budget.
    pub fn len(&self) -> usize {
        match self {
            FrameOut::Text(t) => t.len(),
            FrameOut::Ping => 0,
            FrameOut::Close { reason, .. } => 2 + reason.len(),
        }
    }

    /// Whether this is our close frame.
    pub fn is_close(&self) -> bool {
        matches!(self, FrameOut::Close { .. })
    }
}
