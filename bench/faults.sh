#!/usr/bin/env bash
# Faults in a 3-node cluster (issue 16, part 3): three processes of the real
# server and a real redis-server, calls in every room from clients that
# follow the protocol (loadtest's `faults` binary), then
#   kill          SIGKILL of the node holding most rooms, FAULTS_ROUNDS times
#   drain         SIGTERM of it (a third as many times, at least 3)
#   redis-outage  Redis stopped for FAULTS_OUTAGE seconds, then started again
#   redis-empty   Redis killed and started again at once without its data
# once with the server's default settings and once with tuned ones, and
# writes docs/reliability/faults.md from the results.
#
#   bench/faults.sh                  full run (about 15 minutes with a before build)
#   FAULTS_QUICK=1 bench/faults.sh   a short check of the script itself
#   FAULTS_BEFORE_BIN=/path/old-rheo-sfu bench/faults.sh
#                                    adds the kill scenario with another build
#                                    (its own defaults) as "before"
#   FAULTS_CONFIGS="default tuned"   which configurations to run
#
# Everything runs inside a fresh network namespace (scripts/in-testnet.sh):
# media on 10.77.0.1 only, signaling and Redis on 127.0.0.1.
# Results: bench/results/faults-<stamp>/<config>.json (raw) and summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -z "${FAULTS_IN_NETNS:-}" ]; then
  command -v redis-server >/dev/null || { echo "installing redis-server (Debian)"; apt-get install -y -q redis-server >/dev/null; }
  command -v ip >/dev/null || apt-get install -y -q iproute2 >/dev/null
  cargo build --release --locked -p rheo-sfu -p loadtest --bin rheo-sfu --bin faults
  export FAULTS_IN_NETNS=1
  exec scripts/in-testnet.sh "$0" "$@"
fi

STAMP=${FAULTS_STAMP:-$(date -u +%Y%m%d-%H%M%S)}
OUT=$ROOT/bench/results/faults-$STAMP
mkdir -p "$OUT"
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
FAULTS=$ROOT/target/release/faults
SFU=${FAULTS_SFU_BIN:-$ROOT/target/release/rheo-sfu}
CONFIGS=${FAULTS_CONFIGS:-"default tuned"}
if [ -n "${FAULTS_QUICK:-}" ]; then
  ROUNDS=2; OUTAGE=6; ROOMS=2
else
  ROUNDS=${FAULTS_ROUNDS:-10}; OUTAGE=${FAULTS_OUTAGE:-30}; ROOMS=${FAULTS_ROOMS:-3}
fi
# The tuned configuration: a shorter registry TTL and lease (see
# docs/reliability/faults.md for what they cost).
TUNED=(--set NODE_TTL_MS=1500 --set ROOM_LEASE_MS=3000)

run_config() { # label binary scenarios [--set ...]
  local label=$1 bin=$2 scenarios=$3; shift 3
  echo "== $label: $scenarios"
  "$FAULTS" --sfu-bin "$bin" --ip 10.77.0.1 --label "$label" --scenarios "$scenarios" \
    --rounds "$ROUNDS" --rooms "$ROOMS" --outage-secs "$OUTAGE" \
    --out "$OUT/$label.json" "$@" 2> >(tee "$OUT/$label.err" >&2)
}

if [ -n "${FAULTS_BEFORE_BIN:-}" ]; then
  run_config before "$FAULTS_BEFORE_BIN" kill
fi
for c in $CONFIGS; do
  case $c in
    default) run_config default "$SFU" kill,drain,redis-outage,redis-empty ;;
    tuned) run_config tuned "$SFU" kill,drain,redis-outage,redis-empty "${TUNED[@]}" ;;
    *) echo "unknown configuration $c" >&2; exit 2 ;;
  esac
done
python3 bench/reliability_faults.py "$OUT"
echo "results in $OUT; report docs/reliability/faults.md"
