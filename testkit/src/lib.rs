//! What the integration tests (`tests/`) and the load tester (`loadtest/`)
//! both need, kept once: they drive the server the same way and must obey
//! the same network rule, so a fix to either belongs to both.
//!
//! * [`rtc`]: webrtc-rs peers restricted to host UDP candidates on one
//!   address, the codecs every peer offers, offer/answer with full
//!   gathering.
//! * [`sdp`]: `a=candidate` parsing, the one-address rule applied to remote
//!   SDP and trickled candidates, the ICE ufrag of an SDP.
//! * [`vp8`]: the VP8 payload descriptor and frame header that synthetic
//!   video carries and receivers read back.
//! * [`http`]: a plain GET for the server's small JSON routes.
//! * [`proto`]: the chores of a participant speaking our protocol with
//!   `signaling::client`: sign in, join, request/reply with errors,
//!   subscribing to every publisher, candidates to and from webrtc-rs.
//!
//! What only one side needs stays there: the tests' trickle-ICE peers and
//! counter payloads in `tests/common/`, the load tester's timed payloads
//! and metrics in `loadtest/src/`.
#![deny(missing_docs)]

pub mod http;
pub mod proto;
pub mod rtc;
pub mod sdp;
pub mod vp8;
