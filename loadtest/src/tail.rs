//! The 24-byte tail every synthetic RTP payload ends with (format in
//! [`crate::media`]'s docs), and the process clock its send time is on.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::{BufMut, BytesMut};

/// Tail length in bytes.
pub const TAIL: usize = 24;
const MAGIC: &[u8; 4] = b"RSLT";

/// Nanoseconds since the first call in this process (monotonic).
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Decoded tail of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Publisher track.
    pub source: u32,
    /// Packet counter of that track.
    pub counter: u64,
    /// [`now_ns`] when sent.
    pub sent_ns: u64,
}

/// Reads the tail of a payload; `None` when it is not ours.
pub fn parse_tail(payload: &[u8]) -> Option<Tail> {
    let tail = payload.get(payload.len().checked_sub(TAIL)?..)?;
    if &tail[..4] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes([tail[i], tail[i + 1], tail[i + 2], tail[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&tail[i..i + 8]);
        u64::from_be_bytes(b)
    };
    Some(Tail {
        source: u32_at(4),
        counter: u64_at(8),
        sent_ns: u64_at(16),
    })
}

pub(crate) fn put_tail(buf: &mut BytesMut, t: Tail) {
    buf.put_slice(MAGIC);
    buf.put_u32(t.source);
    buf.put_u64(t.counter);
    buf.put_u64(t.sent_ns);
}
