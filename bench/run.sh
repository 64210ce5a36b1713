#!/usr/bin/env bash
# Side-by-side benchmark: rheo-sfu and Janus VideoRoom under the identical
# load from the load tester, on this machine, then docs/BENCHMARKS.md.
#
#   bench/run.sh                 full set (fan-out 50..250, then up from 300 until
#                                delivery < 99.9 %; rooms of 4, 8, 12; churn)
#   BENCH_TARGETS=sfu BENCH_SFU_BIN=/path/old-rheo-sfu BENCH_NO_REPORT=1 bench/run.sh
#                                our side only, with another server build
#   BENCH_BASELINE=bench/results/X bench/run.sh   adds a before/after table
#   BENCH_QUICK=1 bench/run.sh   a short check of the script itself
#
# Everything runs inside a fresh network namespace (scripts/in-testnet.sh):
# both SFUs and every peer use 10.77.0.1 only, signaling is on 127.0.0.1.
# Each run gets a freshly started SFU process, so its CPU seconds and RSS
# (read from /proc by the load tester) belong to that run alone.
# Results: bench/results/<stamp>/*.json|png; the report is rewritten from them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -z "${BENCH_IN_NETNS:-}" ]; then
  command -v janus >/dev/null || { echo "installing janus (Debian)"; apt-get install -y -q janus >/dev/null; }
  command -v ip >/dev/null || apt-get install -y -q iproute2 >/dev/null
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || apt-get install -y -q fonts-dejavu-core >/dev/null
  cargo build --release --locked -p rheo-sfu -p loadtest
  export BENCH_IN_NETNS=1
  exec scripts/in-testnet.sh "$0" "$@"
fi

. bench/lib.sh
IP=$BENCH_IP
STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
OUT=$ROOT/bench/results/$STAMP
mkdir -p "$OUT"
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
LT=$ROOT/target/release/loadtest
# BENCH_SFU_BIN: another server binary (e.g. a build from before a change),
# BENCH_TARGETS: which SFUs to run ("sfu janus").
SFU=${BENCH_SFU_BIN:-$ROOT/target/release/rheo-sfu}
TARGETS=${BENCH_TARGETS:-"sfu janus"}
DURATION=${BENCH_DURATION:-20}
if [ -n "${BENCH_QUICK:-}" ]; then
  FANOUT=${BENCH_FANOUT:-"5"}; ROOMS=${BENCH_ROOMS:-"3"}; MAX_FROM=0; DURATION=5
else
  FANOUT=${BENCH_FANOUT:-"50 100 150 200 250"}; ROOMS=${BENCH_ROOMS:-"4 8 12"}; MAX_FROM=${BENCH_MAX_FROM:-300}
fi
MAX_STEP=${BENCH_MAX_STEP:-100}
MAX_LIMIT=${BENCH_MAX_LIMIT:-800}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT


start_sfu() { # log -> sets SERVER_PID URL
  FORWARD_LIMIT=${FORWARD_LIMIT:-0} start_bench_sfu "$1" "$SFU"
  SERVER_PID=$SFU_PID; PIDS+=("$SERVER_PID")
  wait_port 127.0.0.1 9000
  URL=ws://127.0.0.1:9000/ws
}

start_janus() { # log -> sets SERVER_PID URL
  # One Janus event loop per core: with its default (a thread per handle)
  # Janus collapses at 200 subscribers on 2 cores; this is its better setting.
  JANUS_EVENT_LOOPS=${JANUS_EVENT_LOOPS:-$(nproc)} \
    bench/janus/start-janus.sh "$IP" 8188 "$OUT/janus-conf" >"$1" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_port "$IP" 8188
  URL=ws://$IP:8188/
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

one() { # target scenario n [label] -> prints delivery
  local target=$1 scenario=$2 n=$3 label=${4:-$(date -u +%F)}
  local name="$1-$2-$3"
  [ "${4:-}" ] && name="$1-$4-$3"
  if [ "$target" = sfu ]; then start_sfu "$OUT/$name.log"; else start_janus "$OUT/$name.log"; fi
  sleep 1
  JWT_SECRET=$BENCH_SECRET "$LT" --target "$target" --url "$URL" --ip "$IP" \
    --scenario "$scenario" -n "$n" --duration "$DURATION" --ramp-rate 25 \
    --server-pid "$SERVER_PID" --quiet --label "$label" \
    --out "$OUT/$name.json" >>"$OUT/summary.txt" 2>>"$OUT/$name.err" || echo "$name failed" >>"$OUT/summary.txt"
  stop_server
  tail -1 "$OUT/summary.txt"
}

delivery_ok() { # json -> 0 when delivery >= 99.9% and nothing failed
  python3 - "$1" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["summary"]
except Exception:
    sys.exit(1)
ok = (s.get("delivery") or 0) >= 0.999 and s["failed"] == 0 and s["refused"] == 0
sys.exit(0 if ok else 1)
EOF
}

for n in $FANOUT; do
  for t in $TARGETS; do one "$t" fanout "$n"; done
done
for n in $ROOMS; do
  for t in $TARGETS; do one "$t" room "$n"; done
done
for t in $TARGETS; do one "$t" churn 20; done
# The largest fan-out each holds at >= 99.9 % delivery: step up from MAX_FROM.
if [ "$MAX_FROM" -gt 0 ]; then
  for t in $TARGETS; do
    n=$MAX_FROM
    while [ "$n" -le "$MAX_LIMIT" ]; do
      one "$t" fanout "$n"
      delivery_ok "$OUT/$t-fanout-$n.json" || break
      n=$((n + MAX_STEP))
    done
  done
fi
# Admission control at twice the capacity: our largest fan-out at >= 99.9 %
# (C subscribers), then 2C subscribers against a server whose forwarding
# budget is 2C tracks (C subscribers of audio + video): the rest must be
# refused (room-full) and the admitted must keep >= 99 % delivery.
if [ "$MAX_FROM" -gt 0 ] && [ -z "${BENCH_NO_ADMISSION:-}" ] && [[ " $TARGETS " == *" sfu "* ]]; then
  cap=0
  for f in "$OUT"/sfu-fanout-*.json; do
    n=${f##*-}; n=${n%.json}
    if delivery_ok "$f" && [ "$n" -gt "$cap" ]; then cap=$n; fi
  done
  if [ "$cap" -gt 0 ]; then
    FORWARD_LIMIT=$((2 * cap)) one sfu fanout $((2 * cap)) admission
  fi
fi

if [ -z "${BENCH_NO_REPORT:-}" ]; then
  # BENCH_BASELINE: a results folder of an earlier run for the before/after table.
  python3 bench/report.py "$OUT" docs/BENCHMARKS.md ${BENCH_BASELINE:+--baseline "$BENCH_BASELINE"}
fi
echo "results: $OUT"
