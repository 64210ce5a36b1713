//! The command line and its environment variables, as clap reads them;
//! [`super::Config::from_cli`] validates them.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::Placement;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Command line and environment. Every flag has an environment variable of
/// the same name in upper case; `env.example` lists them all.
#[derive(Debug, Parser)]
#[command(name = "rheo-sfu", version, about = "A pure-Rust WebRTC SFU")]
pub struct Cli {
    /// Address to listen on for HTTP/WebSocket.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on for HTTP/WebSocket.
    #[arg(long, env = "PORT", default_value_t = 9000)]
    pub port: u16,
    /// PEM certificate chain: serve HTTPS and WSS on PORT (with
    /// TLS_KEY_PATH). Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "TLS_CERT_PATH")]
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key of TLS_CERT_PATH's certificate.
    #[arg(long, env = "TLS_KEY_PATH")]
    pub tls_key_path: Option<PathBuf>,
    /// Shared secret for HS256/384/512 tokens. Unset with no public key = dev mode.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with an RSA, EC or Ed25519 public key to verify tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on exp/nbf/iat, seconds.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 0)]
    pub jwt_leeway_secs: u64,
    /// Comma-separated IPs offered as ICE host candidates (must exist on an
    /// interface). Empty: every non-loopback interface.
    #[arg(long, env = "ANNOUNCED_IPS", value_delimiter = ',')]
    pub announced_ips: Vec<IpAddr>,
    /// The address clients reach this host's media at when its interface
    /// address is behind a 1:1 NAT: `PUBLIC` (every interface address of
    /// that family), `PUBLIC/PRIVATE` pairs (comma-separated), or `auto`
    /// (asks STUN_URL once at start). Candidates and SDP carry it; the
    /// server still binds the interface address.
    #[arg(long, env = "PUBLIC_IP", value_delimiter = ',')]
    pub public_ip: Vec<String>,
    /// STUN server for PUBLIC_IP=auto: `stun:host[:port]` (port 3478 by default).
    #[arg(long, env = "STUN_URL")]
    pub stun_url: Option<String>,
    /// Lowest UDP port for media (with RTC_MAX_PORT). Unset: ephemeral ports.
    #[arg(long, env = "RTC_MIN_PORT")]
    pub rtc_min_port: Option<u16>,
    /// Highest UDP port for media.
    #[arg(long, env = "RTC_MAX_PORT")]
    pub rtc_max_port: Option<u16>,
    /// Comma-separated ICE server URLs for the server's PeerConnections
    /// (`stun:host:port`, `turn:user:pass@host:port`). Empty by default.
    #[arg(long, env = "ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,
    /// Comma-separated ICE server URLs handed to clients in auth-ok
    /// (`turn:host:3478?transport=udp`, `turns:…`, `stun:…`), with
    /// time-limited credentials when TURN_SECRET is set.
    #[arg(long, env = "TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// Shared secret of the TURN server (coturn's static-auth-secret with
    /// use-auth-secret); needed for turn:/turns: URLs.
    #[arg(long, env = "TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Seconds the TURN credentials given to a client are valid (fresh
    /// ones are sent before they expire).
    #[arg(long, env = "TURN_TTL", default_value_t = 86_400)]
    pub turn_ttl: u64,
    /// TCP port of rheomesh's relay listener (0 = any free port).
    #[arg(long, env = "RELAY_PORT", default_value_t = 9443)]
    pub relay_port: u16,
    /// This node's id (announced in auth-ok). Default: a random id.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// tracing filter, e.g. `info,rheo_sfu=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Maximum simultaneous WebSocket connections.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Maximum rooms on this node.
    #[arg(long, env = "MAX_ROOMS", default_value_t = 1_000)]
    pub max_rooms: usize,
    /// Maximum participants per room.
    #[arg(long, env = "MAX_PARTICIPANTS_PER_ROOM", default_value_t = 100)]
    pub max_participants_per_room: usize,
    /// Tracks this node may forward to subscribers at once (admission
    /// control: beyond it, subscriptions and joins get room-full); 0 = no
    /// limit. Unset: FORWARDED_TRACKS_PER_CORE per available core.
    #[arg(long, env = "MAX_FORWARDED_TRACKS")]
    pub max_forwarded_tracks: Option<usize>,
    /// Seconds between samples of each PeerConnection's WebRTC statistics
    /// for the media metrics (GET /metrics); 0 turns the sampling off.
    #[arg(long, env = "MEDIA_STATS_SECS", default_value_t = 5)]
    pub media_stats_secs: u64,
    /// Messages per second a connection may send (bursts of twice that).
    #[arg(long, env = "MESSAGE_RATE", default_value_t = 50)]
    pub message_rate: u32,
    /// Outbound messages queued per session before it is disconnected as too slow.
    #[arg(long, env = "OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// Bytes queued for one session (room events and frames for its
    /// socket) before it is disconnected as too slow.
    #[arg(long, env = "OUTBOUND_BUFFER_BYTES", default_value_t = 1 << 20)]
    pub outbound_buffer_bytes: usize,
    /// Seconds one WebSocket frame may take to write before the connection
    /// is dropped (a client that does not read its socket).
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = 10)]
    pub write_timeout_secs: u64,
    /// Seconds a connection may take to send a complete HTTP request head,
    /// and may stay idle between requests before its upgrade.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,
    /// TCP connections not yet upgraded to a WebSocket, in total; more are
    /// closed at once.
    #[arg(long, env = "MAX_PENDING_CONNECTIONS", default_value_t = 1024)]
    pub max_pending_connections: usize,
    /// TCP connections not yet upgraded to a WebSocket, per client IP.
    #[arg(long, env = "MAX_PENDING_CONNECTIONS_PER_IP", default_value_t = 32)]
    pub max_pending_connections_per_ip: usize,
    /// Rooms one connection may be in at once.
    #[arg(long, env = "MAX_ROOMS_PER_CONNECTION", default_value_t = 4)]
    pub max_rooms_per_connection: usize,
    /// Rooms one identity (token subject) may be in at once, over all its
    /// connections to this node.
    #[arg(long, env = "MAX_ROOMS_PER_IDENTITY", default_value_t = 16)]
    pub max_rooms_per_identity: usize,
    /// Authenticated connections one identity may hold on this node.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IDENTITY", default_value_t = 16)]
    pub max_connections_per_identity: usize,
    /// Media sections (tracks) one publish offer may carry.
    #[arg(long, env = "MAX_TRACKS_PER_PUBLISHER", default_value_t = 16)]
    pub max_tracks_per_publisher: usize,
    /// Remote ICE candidates one PeerConnection accepts (trickled and in
    /// SDP together); the rest are ignored.
    #[arg(long, env = "MAX_CANDIDATES_PER_PC", default_value_t = 32)]
    pub max_candidates_per_pc: usize,
    /// Networks (CIDR) whose client candidates are used even though they
    /// would be dropped (loopback, link-local), e.g. `127.0.0.0/8` when
    /// clients run on the server's host.
    #[arg(long, env = "CANDIDATE_ALLOW", value_delimiter = ',')]
    pub candidate_allow: Vec<String>,
    /// More networks (CIDR) whose client candidates are dropped, e.g. the
    /// server's internal network on an internet-facing node.
    #[arg(long, env = "CANDIDATE_DENY", value_delimiter = ',')]
    pub candidate_deny: Vec<String>,
    /// Serve `GET /metrics` (Prometheus) only on this address, e.g.
    /// `10.0.0.5:9100`, instead of on the main port.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Seconds to wait for sessions to leave on shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Accept clients' mDNS (`.local`) ICE candidates (resolving them sends
    /// multicast queries on the LAN). Off by default.
    #[arg(long, env = "ALLOW_MDNS_CANDIDATES", default_value_t = false)]
    pub allow_mdns_candidates: bool,
    /// Coordinate with other nodes through Redis (needs REDIS_URL).
    #[arg(long, env = "CLUSTER_MODE", default_value_t = false)]
    pub cluster_mode: bool,
    /// Redis URL for cluster mode, e.g. `redis://127.0.0.1:6379/0`.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// WebSocket URL clients reach this node at (registry, /health).
    /// Default: ws://<first announced IP, else HOST>:<PORT>/ws.
    #[arg(long, env = "ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Which node takes a new room: `local` (the node the client reached)
    /// or `least-loaded` (the live node with the fewest participants).
    #[arg(long, env = "PLACEMENT", value_enum, default_value_t = Placement::Local)]
    pub placement: Placement,
    /// Room ownership lease in milliseconds; renewed every third of it.
    /// A live node that stops renewing loses its rooms after it.
    #[arg(long, env = "ROOM_LEASE_MS", default_value_t = 10_000)]
    pub room_lease_ms: u64,
    /// Node registry entry lifetime in milliseconds; refreshed every third
    /// of it. A dead node's rooms can be taken this long after its last
    /// heartbeat (docs/reliability/faults.md: why 3 s is safe).
    #[arg(long, env = "NODE_TTL_MS", default_value_t = 3_000)]
    pub node_ttl_ms: u64,
    /// Prefix of every Redis key and channel.
    #[arg(long, env = "CLUSTER_PREFIX", default_value = "rheo-sfu")]
    pub cluster_prefix: String,
}
