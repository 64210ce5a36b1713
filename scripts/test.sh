#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, builds
# outside the sandbox (crates need the registry), then runs every test inside
# a fresh network namespace that holds only loopback and 10.77.0.1, so WebRTC
# peers and servers can only ever reach addresses the test made.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

cargo fetch --locked
cargo build --workspace --all-targets --locked

if [ "$(id -u)" = 0 ]; then
  sandbox=(unshare --net)
else
  sandbox=(unshare --user --map-root-user --net)
fi
# shellcheck disable=SC2016
"${sandbox[@]}" -- sh -c '
  set -e
  ip link set lo up
  ip addr add 10.77.0.1/32 dev lo
  exec cargo test --workspace --offline --locked -- "$@"
' sh "$@"
