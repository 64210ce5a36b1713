# rheo-sfu: multi-stage build of the single binary.
#
#   docker build -t rheo-sfu .
#   docker run --rm --network host -e ANNOUNCED_IPS=<host address> \
#     -e RTC_MIN_PORT=50000 -e RTC_MAX_PORT=50100 -e JWT_SECRET=<secret> rheo-sfu
#
# Settings: env.example. Deployment notes: README.md.

# ---------------------------------------------------------------- builder ----
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, in their own layer: only the manifests and dummy sources,
# so this layer is rebuilt only when Cargo.toml, Cargo.lock or
# signaling/Cargo.toml change. (Add the manifest of any new workspace member
# here too.)
COPY Cargo.toml Cargo.lock ./
COPY signaling/Cargo.toml signaling/Cargo.toml
RUN mkdir -p src signaling/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs signaling/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src signaling/src

# The real sources. web/ is embedded into the binary with include_str!.
COPY src src
COPY signaling/src signaling/src
COPY web web
# COPY keeps the files' modification times, which may be older than the dummy
# build: touch the crate roots so cargo rebuilds the workspace crates.
RUN touch src/main.rs src/lib.rs signaling/src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/rheo-sfu /usr/local/bin/rheo-sfu

# ---------------------------------------------------------------- runtime ----
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rheo \
 && useradd --system --uid 10001 --gid rheo --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin rheo

COPY --from=builder /usr/local/bin/rheo-sfu /usr/local/bin/rheo-sfu

USER rheo:rheo

# HTTP and WebSocket (PORT). Media is UDP: the range RTC_MIN_PORT..RTC_MAX_PORT
# when set, ephemeral ports otherwise. ICE host candidates are the addresses
# the container sees, so run with host networking (--network host, as
# docker-compose.yml does); with bridge networking publish the UDP range one
# to one (-p 50000-50100:50000-50100/udp) and see README.md for the limits.
# rheomesh's relay listener (TCP RELAY_PORT, 9443) is not used by one node and
# need not be published.
EXPOSE 9000

ENTRYPOINT ["/usr/local/bin/rheo-sfu"]
