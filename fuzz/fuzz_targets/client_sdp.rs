//! Client SDP (publish offers, subscribe answers, subscribe-prepare offers)
//! through every check the server runs before rheomesh sees it; the
//! properties are in `rheo_sfu::media::client_sdp::fuzz_invariants`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rheo_sfu::media::client_sdp::fuzz_invariants(data);
});
