#!/usr/bin/env bash
# Heap profile of the server under a fan-out load: where the memory per
# subscriber goes (heaptrack, from Debian).
#
#   bench/heap.sh [N]        N subscribers (default 50), 15 s of media
#
# heaptrack hooks malloc, so the profiled build uses the system allocator
# (--no-default-features drops mimalloc); it is a release build with debug
# info but without LTO, kept in target/heap so it does not disturb the
# benchmark binaries. Everything runs inside a fresh network namespace
# (scripts/in-testnet.sh) on 10.77.0.1, signaling on 127.0.0.1.
# Results: bench/results/heap-<stamp>/ (heaptrack data, the load tester's
# JSON, and top.txt: the peak heap by allocation site).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
BIN=target/heap/release/rheo-sfu
if [ -z "${BENCH_IN_NETNS:-}" ]; then
  command -v heaptrack >/dev/null || { echo "installing heaptrack (Debian)"; apt-get install -y -q heaptrack >/dev/null; }
  command -v ip >/dev/null || apt-get install -y -q iproute2 >/dev/null
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || apt-get install -y -q fonts-dejavu-core >/dev/null
  cargo build --release --locked -p loadtest
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=1 \
    cargo build --release --locked --no-default-features --bin rheo-sfu --target-dir target/heap
  export BENCH_IN_NETNS=1 BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
  exec scripts/in-testnet.sh "$0" "$@"
fi
. bench/lib.sh
OUT=bench/results/heap-$BENCH_STAMP
mkdir -p "$OUT"
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
FORWARD_LIMIT=0 start_bench_sfu "$OUT/sfu.log" heaptrack -o "$OUT/sfu" "$BIN"
wrapper=$SFU_PID
server=""
for _ in $(seq 1 150); do
  server=$(pgrep -P "$wrapper" -x rheo-sfu || true)
  [ -n "$server" ] && (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break
  sleep 0.2
done
[ -n "$server" ] || { echo "the server did not start under heaptrack" >&2; cat "$OUT/sfu.log" >&2; exit 1; }
JWT_SECRET=$BENCH_SECRET timeout 300 target/release/loadtest --url ws://127.0.0.1:9000/ws --ip "$BENCH_IP" \
  --scenario fanout -n "$N" --duration 15 --ramp-rate 25 --server-pid "$server" --quiet \
  --label "heap-$N" --out "$OUT/fanout-$N.json" 2>"$OUT/loadtest.err" || echo "the load run failed" >&2
grep -E "VmHWM|VmRSS" "/proc/$server/status" | tee "$OUT/rss.txt"
kill -TERM "$server" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
kill -KILL "$server" 2>/dev/null || true
wait "$wrapper" || true
heaptrack_print -f "$OUT/sfu.zst" --print-peaks 1 --print-allocators 0 --print-temporary 0 \
  --print-leaks 0 --peak-limit 40 --sub-peak-limit 12 2>/dev/null >"$OUT/peaks.txt"
python3 bench/heap-top.py "$OUT/peaks.txt" "$N" | tee "$OUT/top.txt"
echo "results: $OUT"
