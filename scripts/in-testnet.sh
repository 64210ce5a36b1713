#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that holds only loopback
# and a veth pair with 10.77.0.1/24 and 10.77.0.2/24 (IPv6 off), so WebRTC
# peers, servers and Chromium can only reach addresses this script made.
# The namespace disappears with the command. Usage: scripts/in-testnet.sh CMD [ARGS…]
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then
  sandbox=(unshare --net)
else
  sandbox=(unshare --user --map-root-user --net)
fi
# Chromium ignores loopback interfaces for ICE, hence a veth pair rather than
# an extra address on lo (webrtc-rs would accept either); Firefox also needs
# a default route (added on the veth, which leads nowhere).
# shellcheck disable=SC2016
exec "${sandbox[@]}" -- sh -c '
  set -e
  ip link set lo up
  ip link add v0 type veth peer name v1
  ip addr add 10.77.0.1/24 dev v0
  ip addr add 10.77.0.2/24 dev v1
  ip link set v0 up
  ip link set v1 up
  # Firefox gathers no ICE candidate without a default route. The veth has
  # no way out of the namespace, so nothing leaves through it.
  ip route add default dev v0
  sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  # Ephemeral ports below 15000 in here: rheomesh picks a relay UDP port in
  # 15000-65535, checks it is free and binds it on 0.0.0.0 a moment later,
  # unwrap()ing the bind, so a socket that takes that port in between (every
  # peer, browser and server of a test binds ephemeral ports on 10.77.0.x)
  # panics its publisher task. Deployments keep RTC_MIN_PORT..RTC_MAX_PORT
  # below 15000 for the same reason (README). The server copes when it does
  # happen (subscribers report the track; the publisher is asked to
  # republish), but a test peer that does not follow reconnect would not.
  echo "1024 14999" > /proc/sys/net/ipv4/ip_local_port_range
  exec "$@"
' sh "$@"
