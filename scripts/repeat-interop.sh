#!/usr/bin/env bash
# Runs the media and interop tests N times in a row (default 20), each run in
# a fresh test namespace, and prints one line per run and a tally; the logs
# of failed runs are kept in target/repeat/. Issue 11's reliability check:
#   scripts/repeat-interop.sh [N]
# Needs what scripts/test.sh installs and builds (run it once first).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
export INTEROP_PYTHON="${INTEROP_PYTHON:-$PWD/target/interop-venv/bin/python}"
out=target/repeat
mkdir -p "$out"
rust_ok=0 browser_ok=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  if scripts/in-testnet.sh cargo test --offline --locked --test media --test interop >"$out/rust-$i.log" 2>&1; then
    rust=ok; rust_ok=$((rust_ok + 1)); rm -f "$out/rust-$i.log"
  else
    rust=FAILED
  fi
  if scripts/in-testnet.sh sh -c 'cd tests/browser && node --test interop.test.mjs' >"$out/browser-$i.log" 2>&1; then
    browser=ok; browser_ok=$((browser_ok + 1))
    mesh=$(grep -o 'full mesh flowing [0-9]* ms' "$out/browser-$i.log" | head -1 || true)
    rm -f "$out/browser-$i.log"
  else
    browser=FAILED; mesh=
  fi
  echo "run $i: rust $rust, browser interop $browser, $(( $(date +%s) - start )) s ${mesh:+($mesh)}"
done
echo "rust media+interop: $rust_ok/$n green; browser interop room: $browser_ok/$n green"
[ "$rust_ok" = "$n" ] && [ "$browser_ok" = "$n" ]
