//! The admin API (`/admin/v1/`), its event stream and the `sfuctl` CLI
//! (docs/OPERATIONS.md), against the real server: in-process servers on
//! 127.0.0.1, real WebSocket clients, real webrtc-rs peers where tracks
//! matter, a real `redis-server` and two in-process nodes for cluster mode,
//! and the built `sfuctl` binary.
//!
//! One test binary, a file per concern (every test binary links the whole
//! webrtc stack); the helpers the files share are in support.rs.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod api;
mod cli;
mod cluster;
mod events;
mod mute;
