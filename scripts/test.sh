#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, builds
# outside the sandbox (crates and npm packages need their registries), then
# runs every test inside a fresh network namespace (scripts/in-testnet.sh)
# that holds only loopback and 10.77.0.1/10.77.0.2 on a veth pair, so WebRTC
# peers, servers and Chromium can only ever reach addresses the test made.
#
#   scripts/test.sh            everything
#   scripts/test.sh rust|web|browser|docker   one part (extra args go to cargo test)
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"
[ $# -gt 0 ] && shift

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
# Firefox ESR for the interop browser test (tests/browser/interop.test.mjs).
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# vpxenc: the VP8 clip the webrtc-rs peer of the interop room sends.
command -v vpxenc >/dev/null 2>&1 || missing+=(vpx-tools)
# Network topologies of tests/network.rs: nftables (NAT, client firewalls),
# coturn (STUN/TURN server), nsenter (util-linux, checked above).
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
# openssl: the certificates of the TLS test (tests/network.rs).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Text in the load tester's PNG plots (tests/loadtest.rs).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# Prometheus and promtool (tests/metrics.rs), without the recommended node
# exporter.
lean=()
command -v promtool >/dev/null 2>&1 || lean+=(prometheus)
if [ ${#missing[@]} -gt 0 ] || [ ${#lean[@]} -gt 0 ]; then
  echo "installing: ${missing[*]} ${lean[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  [ ${#missing[@]} -eq 0 ] ||
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  [ ${#lean[@]} -eq 0 ] ||
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  { echo "Node.js 18 or newer is needed for the web tests (found $(node --version))" >&2; exit 1; }

# aiortc (tests/interop.rs): an independent WebRTC stack without ICE
# restarts, in a venv of its own, pinned; made here, outside the namespace,
# because it needs PyPI.
venv=target/interop-venv
if ! "$venv/bin/python" -c 'import aiortc, websockets' >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || { echo "python3 not found: install Python 3.10 or newer" >&2; exit 1; }
  python3 -m venv "$venv" 2>/dev/null || {
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install -q --disable-pip-version-check aiortc==1.16.0 websockets==15.0.1
fi
export INTEROP_PYTHON="$PWD/$venv/bin/python"

cargo fetch --locked
cargo build --workspace --all-targets --locked
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

run_rust='cargo test --workspace --offline --locked -- "$@"'
run_web='node --test web/test/'
run_browser='cd tests/browser && node --test --test-concurrency=1 .'
if [ "$part" = docker ] || [ "$part" = all ]; then
  # Static checks of Dockerfile and docker-compose.yml (no engine here);
  # outside the namespace: it installs its tools from the registries.
  scripts/check-docker.sh
  [ "$part" = docker ] && exit 0
fi
case "$part" in
  rust) script="$run_rust" ;;
  web) script="$run_web" ;;
  browser) script="$run_browser" ;;
  all) script="$run_rust && $run_web && ($run_browser)" ;;
  *) echo "unknown part '$part' (rust, web, browser, docker, all)" >&2; exit 2 ;;
esac
exec scripts/in-testnet.sh sh -c "set -e; $script" sh "$@"
