# rheo-sfu: multi-stage build of the single binary.
#
#   docker build -t rheo-sfu .
#   docker run --rm --network host -e ANNOUNCED_IPS=<host address> \
#     -e RTC_MIN_PORT=10000 -e RTC_MAX_PORT=10100 -e JWT_SECRET=<secret> rheo-sfu
#
# Settings: env.example. Deployment notes: README.md. Single node and a
# two-node Redis cluster: docker-compose.yml. Checked without a Docker engine
# by scripts/check-docker.sh (hadolint, and that every workspace member is
# copied below).
#
# Base images are pinned by tag: rust:1-bookworm follows Rust 1.x stable
# (the workspace needs 1.85 or newer) on the same Debian release as the
# runtime image, so the binary's glibc matches. For reproducible production
# builds pin them by digest as well (rust:1-bookworm@sha256:...).

# ---------------------------------------------------------------- builder ----
FROM rust:1-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# 1. Dependencies, in their own cached layer: only the manifests, the lock
#    file and empty stand-in sources, so this layer is rebuilt only when a
#    Cargo.toml or Cargo.lock changes, not when a source file does.
#
#    EVERY member of [workspace] members in the root Cargo.toml must have its
#    Cargo.toml copied here: cargo loads the whole workspace even to build one
#    package and fails on a member whose manifest is missing (and --locked
#    fails if the lock file no longer matches the members). When a member is
#    added, e.g. loadtest/, add BOTH lines marked (*):
#        COPY loadtest/Cargo.toml loadtest/Cargo.toml      (*) here
#        COPY loadtest/src loadtest/src                    (*) in step 2
#    plus whatever else its build reads (build.rs, include_str! files).
#    The stand-in sources below are made for every copied manifest, so the
#    RUN line needs no change. scripts/check-docker.sh fails while a member
#    of the root Cargo.toml has no such COPY lines.
COPY Cargo.toml Cargo.lock ./
COPY signaling/Cargo.toml signaling/Cargo.toml
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY testkit/Cargo.toml testkit/Cargo.toml
# An empty lib.rs and a `fn main() {}` main.rs for each package: enough
# targets for cargo to resolve and compile every dependency. Only the server
# is built (-p rheo-sfu): other members (signaling is a dependency of it,
# tools such as a load tester are not) need their manifests, not a build.
RUN find . -name Cargo.toml -not -path './target/*' -printf '%h\n' \
      | while read -r dir; do \
          mkdir -p "$dir/src"; \
          echo 'fn main() {}' > "$dir/src/main.rs"; \
          : > "$dir/src/lib.rs"; \
        done \
 && cargo build --release --locked --package rheo-sfu --bin rheo-sfu \
 && find . -name Cargo.toml -not -path './target/*' -printf '%h/src\n' \
      | xargs rm -rf

# 2. The real sources. web/ is embedded into the binary with include_str!
#    (src/http.rs), so it is needed at build time, not at run time.
COPY src src
COPY signaling/src signaling/src
COPY loadtest/src loadtest/src
COPY testkit/src testkit/src
COPY web web
# COPY keeps the files' modification times, which may be older than the
# stand-in build: touch the crate roots so cargo rebuilds the workspace crates.
RUN touch src/main.rs src/lib.rs signaling/src/lib.rs \
 && cargo build --release --locked --package rheo-sfu --bin rheo-sfu \
 && install -m 0755 target/release/rheo-sfu /usr/local/bin/rheo-sfu

# ---------------------------------------------------------------- runtime ----
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="rheo-sfu" \
      org.opencontainers.image.description="A pure-Rust WebRTC SFU" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates only (for TLS to ICE/TURN servers); no curl or wget, see
# HEALTHCHECK. Versions are not pinned (DL3008): bookworm's archive keeps only
# the current version of each package, so a pin would break the build at the
# next security update; the image gets the current patched version instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rheo \
 && useradd --system --uid 10001 --gid rheo --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin rheo

COPY --from=builder /usr/local/bin/rheo-sfu /usr/local/bin/rheo-sfu

# Numeric uid:gid (the rheo user above), so that runtimes can verify a
# non-root user without reading /etc/passwd (Kubernetes runAsNonRoot).
USER 10001:10001

# HTTP and WebSocket (PORT, 9000 unless set). Media is UDP: the range
# RTC_MIN_PORT..RTC_MAX_PORT when set, ephemeral ports otherwise. ICE host
# candidates are the addresses the container sees, so run with host networking
# (--network host, as docker-compose.yml does); with bridge networking publish
# the UDP range one to one (-p 10000-10100:10000-10100/udp) and see README.md
# for the limits. rheomesh's relay listener (TCP RELAY_PORT, 9443) is not used
# by one node and need not be published.
EXPOSE 9000

# Health: GET /health on the node's own HTTP port must answer 200 with
# "status":"ok" ("draining" during shutdown counts as unhealthy).
# No curl or wget is installed for this: the probe is bash's built-in
# /dev/tcp (bash is an essential package of every Debian image, so the slim
# image already has it), which adds no package, no size and nothing to patch.
# It reads PORT and HOST from the container's environment (HOST 0.0.0.0 or ::
# is probed on loopback), so it follows a node moved to another port, e.g.
# sfu-b on 9001 in docker-compose.yml. Orchestrators that ignore HEALTHCHECK
# (Kubernetes) should probe GET /health with their own HTTP probe instead.
# Try it by hand: docker inspect --format '{{json .State.Health}}' <container>
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/bin/bash", "-c", "case ${HOST:-0.0.0.0} in 0.0.0.0) h=127.0.0.1 ;; ::) h=::1 ;; *) h=$HOST ;; esac; exec 3<>/dev/tcp/$h/${PORT:-9000} || exit 1; printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3; r=$(cat <&3); [[ $r == 'HTTP/1.'[01]' 200 '* && $r == *'\"status\":\"ok\"'* ]]"]

ENTRYPOINT ["/usr/local/bin/rheo-sfu"]
