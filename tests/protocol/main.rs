//! Signaling protocol conformance (PROTOCOL.md, version 1): authentication,
//! grants, bad input, rooms, the HTTP endpoints and graceful shutdown.
//!
//! No WebRTC media: every test talks to its own in-process server on
//! 127.0.0.1, so these pass with a plain `cargo test --test protocol` as well
//! as inside the network namespace of scripts/test.sh.
//!
//! One test binary, a file per concern: every test binary links the whole
//! webrtc stack, so splitting by binary would cost a link each. The helpers
//! the files share are in support.rs.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod auth;
mod bad_input;
mod grants;
mod http;
mod limits;
mod rooms;
mod shutdown;
