#!/usr/bin/env bash
# Churn soak (issue 16): rooms opening and closing around a stable call for
# a while, then: does the server give back everything it took?
#
#   bench/soak.sh                30 minutes at the default load (40 rooms of 3
#                                churning + 4 stable: about half this node's
#                                capacity, docs/BENCHMARKS.md)
#   bench/soak.sh 300            5 minutes
#   SOAK_ARGS="--rooms 10" bench/soak.sh 600   other load (see `soak --help`)
#   SOAK_NO_REPORT=1 bench/soak.sh             keep docs/reliability/soak.md
#
# Release build; everything inside a fresh network namespace
# (scripts/in-testnet.sh), like bench/run.sh. Results in
# bench/results/soak-<stamp>/: summary.json (small), series.json (per second,
# not for git), soak.png, recovery.png, the server log; then
# docs/reliability/soak.md is written from the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${1:-${SOAK_DURATION:-1800}}

if [ -z "${BENCH_IN_NETNS:-}" ]; then
  command -v ip >/dev/null || apt-get install -y -q iproute2 >/dev/null
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || apt-get install -y -q fonts-dejavu-core >/dev/null
  cargo build --release --locked -p rheo-sfu -p loadtest --bin rheo-sfu --bin soak
  export BENCH_IN_NETNS=1
  exec scripts/in-testnet.sh "$0" "$@"
fi

. bench/lib.sh
STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
OUT=$ROOT/bench/results/soak-$STAMP
mkdir -p "$OUT"
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
SFU=${BENCH_SFU_BIN:-$ROOT/target/release/rheo-sfu}
SOAK=$ROOT/target/release/soak

# The server's own defaults (forwarding budget included), but the limits of
# bench/lib.sh that a load test would hit first.
# No RUST_BACKTRACE: symbolizing a backtrace (a panic inside the media
# library) caches debug info on the heap for good, which would read as a leak.
RUST_BACKTRACE=0 start_bench_sfu "$OUT/server.log" "$SFU"
trap 'kill "$SFU_PID" 2>/dev/null || true' EXIT
wait_port 127.0.0.1 9000
sleep 1
status=0
# shellcheck disable=SC2086 # SOAK_ARGS is a list of arguments
JWT_SECRET=$BENCH_SECRET "$SOAK" --url ws://127.0.0.1:9000/ws --ip "$BENCH_IP" \
  --server-pid "$SFU_PID" --duration "$DURATION" --out "$OUT" \
  --label "$(date -u +%F)" ${SOAK_ARGS:-} | tee "$OUT/verdict.txt" || status=$?
kill "$SFU_PID" 2>/dev/null || true
wait "$SFU_PID" 2>/dev/null || true
if [ -z "${SOAK_NO_REPORT:-}" ] && [ -f "$OUT/summary.json" ]; then
  python3 bench/reliability_soak.py "$OUT" docs/reliability/soak.md
fi
echo "results: $OUT"
exit "$status"
