//! How clients reach this node's media: the public address behind a 1:1
//! NAT (`PUBLIC_IP`, [`public_ip`]), discovered through STUN when asked to
//! ([`stun`]); TURN REST credentials for clients ([`turn`]); TLS on the
//! HTTP/WebSocket port with certificate reload ([`tls`]). Plain data and plain sockets: the media adapter applies the
//! mapping to what it sends.

pub mod public_ip;
pub mod stun;
pub mod tls;
pub mod turn;

pub use public_ip::{NatMap, PublicIpSetting};
