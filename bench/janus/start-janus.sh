#!/usr/bin/env bash
# Usage: start-janus.sh IP WS_PORT CONF_DIR [EXTRA JANUS ARGS...]
# Env: JANUS_EVENT_LOOPS=N sets general.event_loops (default: unset = one
# loop thread per handle, Janus's default).
# Writes a minimal, network-restricted Janus 1.1.2 config for IP/WS_PORT into
# CONF_DIR and execs Janus in the foreground (background it and kill its pid to
# stop it). Only the WebSockets transport (bound to IP) and the VideoRoom
# plugin are loaded; no event handlers, no loggers, no STUN/TURN, no IPv6,
# no mDNS; ICE gathers only on IP (ice_enforce_list). The Janus log goes to
# stdout and to CONF_DIR/janus.log.
# Note: Janus (1.1.2) skips loopback interfaces when gathering ICE candidates,
# so IP must be a non-loopback address (e.g. 10.77.0.1 inside
# scripts/in-testnet.sh); with 127.0.0.1 WebSocket signaling works but its SDPs
# carry no candidates at all.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 IP WS_PORT CONF_DIR [janus args...]" >&2; exit 2; }
IP=$1; PORT=$2; CONF=$3; shift 3
case "$IP" in
  127.*|::1|localhost)
    # Verified with 1.1.2: libnice then ignores ice_enforce_list and gathers
    # on every other interface (host LAN address, IPv6) instead.
    echo "$0: refusing loopback IP $IP: Janus skips loopback for ICE and would gather on the host's other interfaces; use a netns address (scripts/in-testnet.sh, 10.77.0.1)" >&2
    exit 2 ;;
esac
LIBDIR=/usr/lib/x86_64-linux-gnu/janus
[ -d "$LIBDIR" ] || LIBDIR=$(dirname "$(dpkg -L janus | grep -m1 '/plugins/libjanus_videoroom.so$')")/..
mkdir -p "$CONF"
CONF=$(cd "$CONF" && pwd)

# Disable every .so that is not the one we want, whatever the package ships.
others() { # dir keep
  local d=$1 keep=$2 out=()
  for f in "$LIBDIR/$d"/*.so; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    [ "$b" = "$keep" ] || out+=("$b")
  done
  (IFS=,; echo "${out[*]}")
}

cat > "$CONF/janus.jcfg" <<CFG
general: {
	configs_folder = "$CONF"
	plugins_folder = "$LIBDIR/plugins"
	transports_folder = "$LIBDIR/transports"
	events_folder = "$LIBDIR/events"
	loggers_folder = "$LIBDIR/loggers"
	debug_level = 4
	interface = "$IP"
	server_name = "rheo-sfu-bench"
	session_timeout = 60
$( [ -n "${JANUS_EVENT_LOOPS:-}" ] && echo "	event_loops = ${JANUS_EVENT_LOOPS}" )
	# no admin_secret / api_secret / token auth
	protected_folders = [ "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/usr", "/var" ]
}
certificates: {
}
media: {
	ipv6 = false
	ipv6_linklocal = false
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ice_tcp = false
	ignore_mdns = true
	ice_enforce_list = "$IP"
}
plugins: {
	disable = "$(others plugins libjanus_videoroom.so)"
}
transports: {
	disable = "$(others transports libjanus_websockets.so)"
}
loggers: {
	disable = "$(others loggers NONE)"
}
events: {
	broadcast = false
	disable = "$(others events NONE)"
}
CFG

cat > "$CONF/janus.transport.websockets.jcfg" <<CFG
general: {
	events = false
	json = "compact"
	ws = true
	ws_port = $PORT
	ws_ip = "$IP"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
CFG

cat > "$CONF/janus.plugin.videoroom.jcfg" <<CFG
general: {
	events = false
	# no admin_key: clients may create rooms
}
CFG

exec janus -F "$CONF" -C "$CONF/janus.jcfg" -o -D -L "$CONF/janus.log" "$@"
