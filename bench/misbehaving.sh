#!/usr/bin/env bash
# Misbehaving clients next to a good call (issue 16, part 2), the long
# variant of tests/misbehaving.rs: a release build of the server with its
# default limits, a room of BENCH_PARTICIPANTS (4) webrtc-rs participants,
# BENCH_QUIET (30) quiet seconds, then BENCH_ATTACK (120) seconds of seven
# attackers at once (see loadtest/src/misbehave/). Writes
#   bench/results/misbehaving-STAMP/{report.json,server.log,misbehave.log}
#   docs/reliability/misbehaving.json   (the small summary)
#   docs/reliability/misbehaving.md     (bench/misbehaving-report.py)
# Usage: bench/misbehaving.sh           (builds what it needs, release)
#        SFU_BIN=... MISBEHAVE=... bench/misbehaving.sh   (given binaries)
# Runs inside a fresh test namespace (scripts/in-testnet.sh); everything it
# starts is stopped by pid, every loop ends by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IN_TESTNET:-}" ]; then
  export CARGO_INCREMENTAL=0
  if [ -z "${SFU_BIN:-}" ]; then
    cargo build --offline --locked --release -p rheo-sfu --bin rheo-sfu
  fi
  if [ -z "${MISBEHAVE:-}" ]; then
    cargo build --offline --locked --release -p loadtest --bin misbehave
  fi
  export IN_TESTNET=1 BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
  exec scripts/in-testnet.sh "$0" "$@"
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
SFU=${SFU_BIN:-target/release/rheo-sfu}
MB=${MISBEHAVE:-target/release/misbehave}
PORTS=${BENCH_PORTS:-14000-14063}
OUT=bench/results/misbehaving-$BENCH_STAMP
mkdir -p "$OUT"
# Default limits: only what the namespace needs, and the production log level.
env HOST=127.0.0.1 PORT=9000 JWT_SECRET=$BENCH_SECRET ANNOUNCED_IPS=$BENCH_IP RELAY_PORT=0 \
  RTC_MIN_PORT=${PORTS%-*} RTC_MAX_PORT=${PORTS#*-} RUST_LOG=info \
  "$SFU" >"$OUT/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
wait_port 127.0.0.1 9000
status=0
JWT_SECRET=$BENCH_SECRET timeout 600 "$MB" --url ws://127.0.0.1:9000/ws --ip "$BENCH_IP" \
  --junk-from 10.77.0.2 --media-ports "$PORTS" --server-log "$OUT/server.log" \
  --participants "${BENCH_PARTICIPANTS:-4}" --probes "${BENCH_PROBES:-5}" \
  --quiet "${BENCH_QUIET:-30}" --attack "${BENCH_ATTACK:-120}" \
  --server-pid "$pid" --out "$OUT/report.json" 2>"$OUT/misbehave.log" | tee "$OUT/summary.txt" || status=$?
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
trap - EXIT
if [ -f "$OUT/report.json" ]; then
  cp "$OUT/report.json" docs/reliability/misbehaving.json
  python3 bench/misbehaving-report.py docs/reliability/misbehaving.json \
    --server-log "$OUT/server.log" --cpus "$(nproc)" >docs/reliability/misbehaving.md
  echo "wrote docs/reliability/misbehaving.md (raw: $OUT)"
fi
exit "$status"
