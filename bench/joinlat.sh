#!/usr/bin/env bash
# Join -> first media packet for webrtc-rs subscribers, prepared flow and the
# seed-001 flow (--no-prepare), for one or more server binaries side by side:
#
#   bench/joinlat.sh NAME=BINARY [NAME=BINARY ...]
#
# Runs inside a fresh test namespace (scripts/in-testnet.sh). Each binary and
# flow gets BENCH_REPS (default 3) fresh server processes with a fan-out of
# BENCH_N (default 10) subscribers for BENCH_DURATION (default 8) seconds.
# Needs the load tester built (target/debug/loadtest, or LOADTEST=path).
# Prints p50/p95/max per binary and flow over all subscriptions; writes the
# JSON of every run under bench/results/joinlat-STAMP/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 NAME=BINARY [NAME=BINARY ...]" >&2; exit 2; }
if [ -z "${IN_TESTNET:-}" ]; then
  export IN_TESTNET=1 BENCH_STAMP=${BENCH_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
  exec scripts/in-testnet.sh "$0" "$@"
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
LT=${LOADTEST:-target/debug/loadtest}
OUT=bench/results/joinlat-$BENCH_STAMP
mkdir -p "$OUT"
for spec in "$@"; do
  name=${spec%%=*}; bin=${spec#*=}
  for flow in prepared unprepared; do
    extra=(); [ "$flow" = unprepared ] && extra=(--no-prepare)
    for rep in $(seq 1 "${BENCH_REPS:-3}"); do
      start_bench_sfu "$OUT/$name-$flow-$rep.log" "$bin"
      pid=$SFU_PID
      wait_port 127.0.0.1 9000 || true
      JWT_SECRET=$BENCH_SECRET timeout 120 "$LT" --url ws://127.0.0.1:9000/ws --ip "$BENCH_IP" \
        --scenario fanout -n "${BENCH_N:-10}" --duration "${BENCH_DURATION:-8}" --ramp-rate 20 \
        "${extra[@]}" --quiet --no-plot --label "$name $flow" --out "$OUT/$name-$flow-$rep.json" \
        >/dev/null 2>>"$OUT/$name-$flow-$rep.err" || echo "$name $flow $rep: load tester failed" >&2
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  done
done
python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
groups = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    name, flow, _ = os.path.basename(f)[:-5].rsplit("-", 2)
    d = json.load(open(f))
    lat = [c["join_to_first_packet_ms"] for c in d.get("clients_detail", []) if c.get("join_to_first_packet_ms") is not None]
    g = groups.setdefault((name, flow), {"lat": [], "delivery": [], "failed": 0})
    g["lat"] += lat
    g["delivery"].append(d["summary"]["delivery"])
    g["failed"] += d["summary"]["failed"]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
print(f"{'server':<12} {'flow':<11} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'delivery':>9} {'failed':>6}")
for (name, flow), g in sorted(groups.items()):
    print(f"{name:<12} {flow:<11} {len(g['lat']):>4} {pct(g['lat'], 50):>8.0f} {pct(g['lat'], 95):>8.0f} {max(g['lat'] or [float('nan')]):>8.0f} {min(g['delivery']):>9.4f} {g['failed']:>6}")
print(f"results: {out}")
EOF
