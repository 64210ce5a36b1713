#!/usr/bin/env bash
# A/B of server builds on one fan-out size: the same load from the load
# tester against each binary in turn, in a fresh network namespace.
#
#   bench/ab.sh N NAME=BINARY [NAME=BINARY ...]
#   e.g. bench/ab.sh 200 before=/tmp/old/rheo-sfu after=target/release/rheo-sfu
#
# Results: bench/results/ab-<stamp>/<NAME>.json|png and summary.txt (one
# line per build: delivery, delay, CPU seconds, packets per CPU second, RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 N NAME=BINARY [NAME=BINARY ...]" >&2; exit 2; }
if [ -z "${BENCH_IN_NETNS:-}" ]; then
  cargo build --release --locked -p loadtest
  export BENCH_IN_NETNS=1 BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
  exec scripts/in-testnet.sh "$0" "$@"
fi
N=$1; shift
. bench/lib.sh
OUT=bench/results/ab-$BENCH_STAMP
mkdir -p "$OUT"
for spec in "$@"; do
  name=${spec%%=*}; bin=${spec#*=}
  start_bench_sfu "$OUT/$name.log" "$bin"
  pid=$SFU_PID
  wait_port 127.0.0.1 9000 || true
  sleep 1
  JWT_SECRET=$BENCH_SECRET target/release/loadtest --url ws://127.0.0.1:9000/ws --ip "$BENCH_IP" \
    --scenario fanout -n "$N" --duration "${BENCH_DURATION:-20}" --ramp-rate 25 \
    --server-pid "$pid" --quiet --label "$name" --out "$OUT/$name.json" 2>>"$OUT/$name.err" \
    | sed "s/^/$name: /" | tee -a "$OUT/summary.txt" || echo "$name: failed" | tee -a "$OUT/summary.txt"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
echo "results: $OUT"
