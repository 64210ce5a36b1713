//! The counter payloads of the test peers (format in the module docs of
//! `peer`): what [`super::TestPublisher`] writes and
//! [`super::TestSubscriber`] reads back. The VP8 framing around the counter
//! is the testkit's.

use bytes::{BufMut, Bytes, BytesMut};
use sfu_testkit::vp8;

use super::Kind;

const VIDEO_PACKET_SIZE: usize = 1000;
const AUDIO_FILLER: usize = 80;
/// The first partition size the frame headers announce.
const FIRST_PARTITION: u32 = 100;

/// Extracts the 8-byte counter from a payload written by [`super::TestPublisher`].
/// Returns `(counter, is_keyframe_start)`; `None` if the payload is too short
/// or malformed.
pub fn parse_counter(kind: Kind, payload: &[u8]) -> Option<(u64, bool)> {
    let read_u64 = |off: usize| -> Option<u64> {
        let b = payload.get(off..off + 8)?;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    };
    match kind {
        Kind::Audio => read_u64(0).map(|c| (c, false)),
        Kind::Video => {
            let desc = vp8::descriptor(payload)?;
            let mut off = desc.len;
            let mut key = false;
            if desc.frame_start {
                let tag0 = *payload.get(off)?;
                if vp8::is_keyframe_tag(tag0) {
                    key = true;
                    off += vp8::KEYFRAME_HEADER_LEN;
                } else {
                    off += vp8::INTERFRAME_HEADER_LEN;
                }
            }
            read_u64(off).map(|c| (c, key))
        }
    }
}

/// The video payload [`super::TestPublisher`] writes (see the module docs).
pub fn synthetic_video_payload(counter: u64, start_of_frame: bool, keyframe: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(VIDEO_PACKET_SIZE);
    b.put_slice(vp8::PacketStart::new(start_of_frame, keyframe, FIRST_PARTITION).as_bytes());
    b.put_u64(counter);
    while b.len() < VIDEO_PACKET_SIZE {
        b.put_u8(0xa5);
    }
    b.freeze()
}

/// The audio payload [`super::TestPublisher`] writes (see the module docs).
pub fn synthetic_audio_payload(counter: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + AUDIO_FILLER);
    b.put_u64(counter);
    b.put_bytes(0x5a, AUDIO_FILLER);
    b.freeze()
}
