#!/usr/bin/env bash
# Runs the coverage-guided fuzz target for client SDP (fuzz/) for a while:
#   scripts/fuzz.sh [seconds]      default 120
# Needs the nightly toolchain and cargo-fuzz (installed here if missing).
# The same properties run on every `cargo test` over deterministic
# mutations (media::client_sdp::mutation, and the client_sdp target of the
# stable harness in tests/fuzz/, which fuzzes the other parsers too).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd fuzz
mkdir -p target/corpus
cargo +nightly fuzz run client_sdp target/corpus seeds/client_sdp -- -max_total_time="$secs" -max_len=65536
