//! SDP as text, without the media library: which tracks a client's offer
//! sends ([`offer`]), only what the SFU needs to police an offer before it
//! reaches the media library, and the rewrites of the library's subscribe
//! offers ([`rewrite`]).

mod offer;
mod rewrite;

pub use offer::offered_tracks;
pub use rewrite::{
    declare_ice_lite, ice_credentials, only_mid_extension, retire_stale_tracks, silence_probe,
};

#[cfg(test)]
mod tests;
