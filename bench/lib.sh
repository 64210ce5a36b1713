# shellcheck shell=bash
# Shared by bench/run.sh, bench/ab.sh and bench/heap.sh (sourced, inside the
# network namespace): the address and secret of the benchmark, and how our
# server is started for it.
BENCH_IP=10.77.0.1
BENCH_SECRET=bench-secret-0123456789abcdef

# Waits until something listens on host:port (10 s at most).
wait_port() { # host port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:$2" >&2; return 1
}

# Starts our server in the background with the benchmark's settings
# (signaling on 127.0.0.1:9000, media on BENCH_IP, room and rate limits out
# of the way); the command is the binary, optionally behind a wrapper such as
# heaptrack. FORWARD_LIMIT, if set, becomes MAX_FORWARDED_TRACKS (0 = off);
# unset, the server's default applies. Sets SFU_PID (the started command).
start_bench_sfu() { # log command [args...]
  local log=$1; shift
  env ${FORWARD_LIMIT:+MAX_FORWARDED_TRACKS=$FORWARD_LIMIT} \
    HOST=127.0.0.1 PORT=9000 JWT_SECRET=$BENCH_SECRET ANNOUNCED_IPS=$BENCH_IP RELAY_PORT=0 \
    MAX_PARTICIPANTS_PER_ROOM=2000 MAX_CONNECTIONS=5000 MESSAGE_RATE=1000 \
    RUST_LOG=warn "$@" >"$log" 2>&1 &
  # shellcheck disable=SC2034 # read by the scripts that source this file
  SFU_PID=$!
}
