//! The parts of VP8 over RTP that synthetic video needs: the payload
//! descriptor at the start of every packet (RFC 7741 §4.2) and the frame
//! header at the start of every frame (RFC 6386 §9.1), so that an SFU
//! looking for keyframes finds them and a receiver can find them again.
//!
//! Only what an SFU reads is real; the rest of a synthetic frame is filler.

/// Payload descriptor of a packet that starts a frame (S bit, partition 0).
pub const DESCRIPTOR_FRAME_START: u8 = 0x10;
/// Payload descriptor of any later packet of a frame.
pub const DESCRIPTOR_CONTINUATION: u8 = 0x00;
/// A keyframe's frame header: frame tag, start code, dimensions.
pub const KEYFRAME_HEADER_LEN: usize = 10;
/// An interframe's frame header: the frame tag only.
pub const INTERFRAME_HEADER_LEN: usize = 3;

/// A VP8 frame header as written at the start of a frame's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    bytes: [u8; KEYFRAME_HEADER_LEN],
    len: usize,
}

impl FrameHeader {
    /// A shown frame's header whose first partition is `first_part_size`
    /// bytes (19 bits); a keyframe's also carries the start code and
    /// 640x480.
    pub fn new(keyframe: bool, first_part_size: u32) -> FrameHeader {
        let tag: u32 = u32::from(!keyframe) // P: 0 = keyframe
            | (1 << 4) // show_frame
            | (first_part_size << 5);
        let [t0, t1, t2, _] = tag.to_le_bytes();
        let mut bytes = [0u8; KEYFRAME_HEADER_LEN];
        bytes[..3].copy_from_slice(&[t0, t1, t2]);
        if !keyframe {
            return FrameHeader {
                bytes,
                len: INTERFRAME_HEADER_LEN,
            };
        }
        bytes[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        bytes[6..8].copy_from_slice(&640u16.to_le_bytes());
        bytes[8..10].copy_from_slice(&480u16.to_le_bytes());
        FrameHeader {
            bytes,
            len: KEYFRAME_HEADER_LEN,
        }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What a synthetic packet carries before its own data: the payload
/// descriptor and, on a frame's first packet, the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketStart {
    bytes: [u8; 1 + KEYFRAME_HEADER_LEN],
    len: usize,
}

impl PacketStart {
    /// The start of a frame's first packet (`start_of_frame`: with a
    /// [`FrameHeader`] announcing `first_part_size`) or of a later one.
    pub fn new(start_of_frame: bool, keyframe: bool, first_part_size: u32) -> PacketStart {
        let mut bytes = [0u8; 1 + KEYFRAME_HEADER_LEN];
        if !start_of_frame {
            bytes[0] = DESCRIPTOR_CONTINUATION;
            return PacketStart { bytes, len: 1 };
        }
        bytes[0] = DESCRIPTOR_FRAME_START;
        let header = FrameHeader::new(keyframe, first_part_size);
        let header = header.as_bytes();
        bytes[1..=header.len()].copy_from_slice(header);
        PacketStart {
            bytes,
            len: 1 + header.len(),
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the payload descriptor of a packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The packet starts a frame: S bit set and partition index 0, so a
    /// frame header follows the descriptor.
    pub frame_start: bool,
    /// The descriptor's length: where the VP8 data starts.
    pub len: usize,
}

/// Reads the payload descriptor; `None` if the payload ends inside it.
pub fn descriptor(payload: &[u8]) -> Option<Descriptor> {
    let desc = *payload.first()?;
    let mut len = 1usize;
    if desc & 0x80 != 0 {
        // X: extension byte with I/L/T/K flags.
        let x = *payload.get(len)?;
        len += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let pid = *payload.get(len)?;
            len += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            len += 1;
        }
        if x & 0x30 != 0 {
            len += 1;
        }
    }
    Some(Descriptor {
        frame_start: desc & 0x10 != 0 && desc & 0x07 == 0,
        len,
    })
}

/// Whether a frame header's first byte is a keyframe's (P bit clear).
pub fn is_keyframe_tag(tag0: u8) -> bool {
    tag0 & 0x01 == 0
}

/// Whether an RTP payload starts a keyframe.
pub fn keyframe_start(payload: &[u8]) -> bool {
    descriptor(payload)
        .is_some_and(|d| d.frame_start && payload.get(d.len).is_some_and(|&t| is_keyframe_tag(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_as_the_load_tester_wrote_them() {
        // The bytes loadtest/src/media.rs wrote literally before it used this.
        assert_eq!(
            FrameHeader::new(true, 16).as_bytes(),
            [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
        );
        assert_eq!(FrameHeader::new(false, 16).as_bytes(), [0x11, 0x02, 0x00]);
    }

    #[test]
    fn packet_starts() {
        assert_eq!(
            PacketStart::new(true, false, 16).as_bytes(),
            [DESCRIPTOR_FRAME_START, 0x11, 0x02, 0x00]
        );
        assert_eq!(PacketStart::new(true, true, 16).as_bytes().len(), 11);
        assert_eq!(
            PacketStart::new(false, true, 16).as_bytes(),
            [DESCRIPTOR_CONTINUATION]
        );
    }

    #[test]
    fn descriptor_lengths() {
        let plain = descriptor(&[DESCRIPTOR_FRAME_START, 0x10]).unwrap(); // not empty
        assert_eq!(
            plain,
            Descriptor {
                frame_start: true,
                len: 1
            }
        );
        // X, then I with a 15-bit picture id, L and T.
        let ext = descriptor(&[0x90, 0xe0, 0x80, 0x01, 0x00, 0x00, 0x10]).unwrap(); // long enough
        assert_eq!(ext.len, 6);
        assert!(ext.frame_start);
        assert_eq!(descriptor(&[0x90]), None);
        assert_eq!(descriptor(&[0x90, 0x80]), None);
        assert!(!descriptor(&[0x11]).unwrap().frame_start); // partition 1
    }

    #[test]
    fn keyframe_start_reads_the_tag() {
        assert!(keyframe_start(PacketStart::new(true, true, 100).as_bytes()));
        assert!(!keyframe_start(
            PacketStart::new(true, false, 100).as_bytes()
        ));
        assert!(!keyframe_start(&[DESCRIPTOR_CONTINUATION, 0x10]));
        assert!(!keyframe_start(&[DESCRIPTOR_FRAME_START]));
        assert!(!keyframe_start(&[]));
    }
}
