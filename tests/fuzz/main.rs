//! Fuzzing, on the stable toolchain, of everything the server parses from
//! the outside: client messages, tokens, public keys (PEM and the DER inside),
//! client SDP, ICE candidates, and the frames other nodes send over Redis.
//!
//! One test per target; each runs `FUZZ_INPUTS` inputs (default 100,000)
//! made from seeded bytes: mostly real inputs (the SDP fixtures, the keys in
//! tests/keys, tokens minted here, the messages of docs/PROTOCOL.md) under
//! a few structure-aware mutations, some purely random. The checks are no
//! panic plus a cheap property per target (see each module). The inputs
//! come through `arbitrary::Unstructured`, the layer cargo-fuzz uses too,
//! so a target's `make` could take libFuzzer's bytes just as well.
//!
//! ```text
//! cargo test --test fuzz                                 # what CI runs
//! FUZZ_INPUTS=10000000 FUZZ_SEED=random cargo test --profile fuzz --test fuzz -- --nocapture
//! FUZZ_SEED=0x... FUZZ_INPUTS=1 cargo test --test fuzz <target>   # replay one failure
//! ```
//!
//! The `fuzz` profile (Cargo.toml) optimizes but keeps overflow checks and
//! debug assertions; `--release` works too, without them, after a long
//! whole-program build. A failure prints the target, the input's seed, the
//! command that replays it, and the input (and a smaller one when cutting
//! the seed's bytes short still fails).

mod candidates;
mod corpus;
mod driver;
mod forward;
mod keys;
mod messages;
mod mutate;
mod sdp;
mod tokens;
