//! The rheo-sfu signaling protocol, version 1: message types, validation, and
//! (with the cargo feature `client`) an async client.
//!
//! One definition shared by the server, the integration tests, the load tester
//! and anyone's Rust app, so they cannot drift apart. The contract itself is
//! `docs/PROTOCOL.md`; this crate is its executable form.
//!
//! Parsing is lenient where the protocol says so (an SDP may be a string or an
//! `{type, sdp}` object, a candidate may be an object or a bare string, ids may
//! be numbers) and strict everywhere else: [`parse_client_message`] never
//! panics and reports the error code the server must answer with.
#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod close;
mod de;
mod limits;
mod macros;
mod messages;
mod parse;
mod types;

pub use limits::*;
pub use messages::*;
pub use parse::*;
pub use types::*;

/// Protocol version announced in `auth-ok`.
pub const PROTOCOL_VERSION: u32 = 1;
