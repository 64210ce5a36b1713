//! Configuration: flags and environment variables, parsed and validated once.
//!
//! This is the only module that reads the environment (through clap's `env`
//! attributes). Every problem is reported at once, so an operator fixes their
//! `.env` in one go instead of one error per start.

use std::net::IpAddr;
use std::time::Duration;

use clap::ValueEnum;

mod cli;
mod net;

pub use cli::{Cli, LogFormat};
pub use net::{CandidatePolicy, IpNet};

use crate::net::tls::TlsPaths;
use crate::net::turn::TurnSettings;
use crate::net::{NatMap, PublicIpSetting};

/// Where a new room is placed in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Placement {
    /// On the node the client connected to.
    #[default]
    Local,
    /// On the live node with the fewest participants.
    LeastLoaded,
}

/// Cluster settings; `None` in [`Config::cluster`] means a single node.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Redis URL.
    pub redis_url: String,
    /// WebSocket URL clients reach this node at.
    pub advertise_url: String,
    /// Placement of new rooms.
    pub placement: Placement,
    /// Room ownership lease.
    pub room_lease: Duration,
    /// Registry entry lifetime.
    pub node_ttl: Duration,
    /// Key and channel prefix.
    pub prefix: String,
}

/// How tokens are verified: the auth module's key type, so the verifier
/// takes the configured key as it is.
pub use crate::auth::JwtKey;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address for `main` (tests bind their own listener).
    pub listen: std::net::SocketAddr,
    /// Token verification key.
    pub jwt_key: JwtKey,
    /// Required issuer.
    pub jwt_issuer: Option<String>,
    /// Required audience.
    pub jwt_audience: Option<String>,
    /// Clock skew on time claims.
    pub jwt_leeway_secs: u64,
    /// Media settings.
    pub media: MediaSettings,
    /// Node id.
    pub node_id: String,
    /// Limits.
    pub limits: Limits,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Where `GET /metrics` is served: `None` on the main port, else only
    /// on this address (e.g. a private interface).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Log filter.
    pub rust_log: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Cluster mode settings; `None`: a single node.
    pub cluster: Option<ClusterSettings>,
    /// ICE servers for clients (`TURN_URLS`, `TURN_SECRET`, `TURN_TTL`);
    /// `None`: clients get none.
    pub turn: Option<TurnSettings>,
    /// TLS on `PORT` (`TLS_CERT_PATH`, `TLS_KEY_PATH`); `None`: plain HTTP.
    pub tls: Option<TlsPaths>,
}

/// Media (rheomesh/webrtc) settings.
#[derive(Debug, Clone, Default)]
pub struct MediaSettings {
    /// IPs offered as host candidates; empty = all non-loopback interfaces.
    pub announced_ips: Vec<IpAddr>,
    /// UDP port range for media.
    pub port_range: Option<(u16, u16)>,
    /// ICE server URLs.
    pub ice_servers: Vec<String>,
    /// Relay TCP port.
    pub relay_port: u16,
    /// Accept `.local` candidates from clients.
    pub allow_mdns_candidates: bool,
    /// Forwarded-track budget of the node (0 = unlimited).
    pub max_forwarded_tracks: usize,
    /// Which client candidates are used.
    pub candidates: CandidatePolicy,
    /// How often each PeerConnection's statistics are sampled for the
    /// metrics.
    pub stats_interval: StatsInterval,
    /// `PUBLIC_IP`: what server candidates and SDP carry instead of the
    /// interface addresses (1:1 NAT).
    pub public_ip: PublicIpSetting,
}

/// How often PeerConnections are sampled for the media metrics
/// (`MEDIA_STATS_SECS`); `None`: never (the media metrics stay at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsInterval(pub Option<Duration>);

impl Default for StatsInterval {
    fn default() -> Self {
        StatsInterval(Some(Duration::from_secs(5)))
    }
}

/// Limits that protect the node.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Simultaneous WebSocket connections.
    pub max_connections: usize,
    /// Rooms on this node.
    pub max_rooms: usize,
    /// Participants per room.
    pub max_participants_per_room: usize,
    /// Messages per second per connection.
    pub message_rate: u32,
    /// Outbound queue per session.
    pub outbound_queue: usize,
    /// Time allowed to authenticate.
    pub auth_timeout: Duration,
    /// Interval of WebSocket pings.
    pub ping_interval: Duration,
    /// A socket that answered no ping for this long is closed.
    pub pong_timeout: Duration,
    /// Bytes queued per session (events and frames).
    pub outbound_bytes: usize,
    /// Longest write of one frame.
    pub write_timeout: Duration,
    /// Longest wait for a request head (and idle time before the upgrade).
    pub http_header_timeout: Duration,
    /// Not-yet-upgraded connections in total.
    pub max_pending_connections: usize,
    /// Not-yet-upgraded connections per client IP.
    pub max_pending_connections_per_ip: usize,
    /// Rooms per connection.
    pub max_rooms_per_connection: usize,
    /// Rooms per identity over its connections.
    pub max_rooms_per_identity: usize,
    /// Authenticated connections per identity.
    pub max_connections_per_identity: usize,
    /// Tracks per publish offer.
    pub max_tracks_per_publisher: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_rooms: 1_000,
            max_participants_per_room: 100,
            message_rate: 50,
            outbound_queue: 1024,
            auth_timeout: signaling::AUTH_TIMEOUT,
            ping_interval: signaling::PING_INTERVAL,
            pong_timeout: signaling::PONG_TIMEOUT,
            outbound_bytes: 1 << 20,
            write_timeout: Duration::from_secs(10),
            http_header_timeout: Duration::from_secs(10),
            max_pending_connections: 1024,
            max_pending_connections_per_ip: 32,
            max_rooms_per_connection: 4,
            max_rooms_per_identity: 16,
            max_connections_per_identity: 16,
            max_tracks_per_publisher: 16,
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: dev mode, defaults, no relay port.
    pub fn new_dev() -> Config {
        Config {
            listen: ([127, 0, 0, 1], 0).into(),
            jwt_key: JwtKey::Dev(crate::auth::random_secret()),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 0,
            media: MediaSettings::default(),
            node_id: random_node_id(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
            metrics_addr: None,
            rust_log: "info".into(),
            log_format: LogFormat::Text,
            cluster: None,
            turn: None,
            tls: None,
        }
    }

    /// Validates the command line/environment; every problem is listed.
    pub fn from_cli(cli: Cli) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let jwt_key = match (&cli.jwt_secret, &cli.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                errors.push("set JWT_SECRET or JWT_PUBLIC_KEY_FILE, not both".to_owned());
                None
            }
            (Some(s), None) if s.len() < 16 => {
                errors.push("JWT_SECRET must be at least 16 bytes".to_owned());
                None
            }
            (Some(s), None) => Some(JwtKey::Secret(s.as_bytes().to_vec())),
            (None, Some(path)) => match std::fs::read(path) {
                Ok(pem) => Some(JwtKey::PublicKeyPem(pem)),
                Err(e) => {
                    errors.push(format!(
                        "JWT_PUBLIC_KEY_FILE {}: cannot read: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => Some(JwtKey::Dev(crate::auth::random_secret())),
        };
        let port_range = match (cli.rtc_min_port, cli.rtc_max_port) {
            (None, None) => None,
            (Some(min), Some(max)) if min > 0 && min <= max => Some((min, max)),
            (Some(min), Some(max)) => {
                errors.push(format!(
                    "RTC_MIN_PORT ({min}) must be > 0 and <= RTC_MAX_PORT ({max})"
                ));
                None
            }
            _ => {
                errors.push("set both RTC_MIN_PORT and RTC_MAX_PORT, or neither".to_owned());
                None
            }
        };
        for url in &cli.ice_servers {
            if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:"))
            {
                errors.push(format!(
                    "ICE_SERVERS entry `{url}` must start with stun:, turn: or turns:"
                ));
            }
        }
        for (name, value) in [
            ("MAX_CONNECTIONS", cli.max_connections),
            ("MAX_ROOMS", cli.max_rooms),
            ("MAX_PARTICIPANTS_PER_ROOM", cli.max_participants_per_room),
            ("MESSAGE_RATE", cli.message_rate as usize),
            ("OUTBOUND_QUEUE", cli.outbound_queue),
            ("OUTBOUND_BUFFER_BYTES", cli.outbound_buffer_bytes),
            ("WRITE_TIMEOUT_SECS", cli.write_timeout_secs as usize),
            (
                "HTTP_HEADER_TIMEOUT_SECS",
                cli.http_header_timeout_secs as usize,
            ),
            ("MAX_PENDING_CONNECTIONS", cli.max_pending_connections),
            (
                "MAX_PENDING_CONNECTIONS_PER_IP",
                cli.max_pending_connections_per_ip,
            ),
            ("MAX_ROOMS_PER_CONNECTION", cli.max_rooms_per_connection),
            ("MAX_ROOMS_PER_IDENTITY", cli.max_rooms_per_identity),
            (
                "MAX_CONNECTIONS_PER_IDENTITY",
                cli.max_connections_per_identity,
            ),
            ("MAX_TRACKS_PER_PUBLISHER", cli.max_tracks_per_publisher),
            ("MAX_CANDIDATES_PER_PC", cli.max_candidates_per_pc),
        ] {
            if value == 0 {
                errors.push(format!("{name} must be greater than 0"));
            }
        }
        if let Some(id) = &cli.node_id {
            if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control()) {
                errors.push("NODE_ID must be 1-64 printable characters".to_owned());
            }
        }
        let cluster = if cli.cluster_mode {
            match &cli.redis_url {
                None => {
                    errors.push("CLUSTER_MODE=true needs REDIS_URL".to_owned());
                    None
                }
                Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://")) => {
                    errors.push("REDIS_URL must start with redis:// or rediss://".to_owned());
                    None
                }
                Some(url) => {
                    if cli.room_lease_ms < 1_000 {
                        errors.push("ROOM_LEASE_MS must be at least 1000".to_owned());
                    }
                    if cli.node_ttl_ms < 1_000 {
                        errors.push("NODE_TTL_MS must be at least 1000".to_owned());
                    }
                    if cli.cluster_prefix.is_empty()
                        || cli
                            .cluster_prefix
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control())
                    {
                        errors.push("CLUSTER_PREFIX must be non-empty, without spaces".to_owned());
                    }
                    let host = cli.announced_ips.first().copied().unwrap_or(cli.host);
                    let advertise_url = cli.advertise_url.clone().unwrap_or_else(|| {
                        format!("ws://{}/ws", std::net::SocketAddr::from((host, cli.port)))
                    });
                    Some(ClusterSettings {
                        redis_url: url.clone(),
                        advertise_url,
                        placement: cli.placement,
                        room_lease: Duration::from_millis(cli.room_lease_ms),
                        node_ttl: Duration::from_millis(cli.node_ttl_ms),
                        prefix: cli.cluster_prefix.clone(),
                    })
                }
            }
        } else {
            None
        };
        if let Some(url) = &cli.advertise_url {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                errors.push("ADVERTISE_URL must start with ws:// or wss://".to_owned());
            }
        }
        let public_ip = public_ip_setting(&cli, &mut errors);
        let turn = turn_settings(&cli, &mut errors);
        let tls = match (&cli.tls_cert_path, &cli.tls_key_path) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let paths = TlsPaths {
                    cert: cert.clone(),
                    key: key.clone(),
                };
                // Checked here so that every problem is reported together;
                // the server loads them again when it starts.
                if let Err(e) = crate::net::tls::load(&paths) {
                    errors.push(e);
                }
                Some(paths)
            }
            _ => {
                errors.push("set both TLS_CERT_PATH and TLS_KEY_PATH, or neither".to_owned());
                None
            }
        };
        let mut nets = |name: &str, list: &[String]| -> Vec<IpNet> {
            list.iter()
                .filter_map(|n| {
                    n.parse::<IpNet>()
                        .map_err(|e| errors.push(format!("{name}: {e}")))
                        .ok()
                })
                .collect()
        };
        let candidate_allow = nets("CANDIDATE_ALLOW", &cli.candidate_allow);
        let candidate_deny = nets("CANDIDATE_DENY", &cli.candidate_deny);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cli.rust_log) {
            errors.push(format!("RUST_LOG `{}`: {e}", cli.rust_log));
        }
        let Some(jwt_key) = jwt_key else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            listen: (cli.host, cli.port).into(),
            jwt_key,
            jwt_issuer: cli.jwt_issuer,
            jwt_audience: cli.jwt_audience,
            jwt_leeway_secs: cli.jwt_leeway_secs,
            media: MediaSettings {
                announced_ips: cli.announced_ips,
                port_range,
                ice_servers: cli.ice_servers,
                relay_port: cli.relay_port,
                allow_mdns_candidates: cli.allow_mdns_candidates,
                max_forwarded_tracks: cli
                    .max_forwarded_tracks
                    .unwrap_or_else(default_forward_limit),
                candidates: CandidatePolicy {
                    max_per_pc: cli.max_candidates_per_pc,
                    allow: candidate_allow,
                    deny: candidate_deny,
                },
                stats_interval: StatsInterval(
                    (cli.media_stats_secs > 0).then(|| Duration::from_secs(cli.media_stats_secs)),
                ),
                public_ip,
            },
            node_id: cli.node_id.unwrap_or_else(random_node_id),
            limits: Limits {
                max_connections: cli.max_connections,
                max_rooms: cli.max_rooms,
                max_participants_per_room: cli.max_participants_per_room,
                message_rate: cli.message_rate,
                outbound_queue: cli.outbound_queue,
                outbound_bytes: cli.outbound_buffer_bytes,
                write_timeout: Duration::from_secs(cli.write_timeout_secs),
                http_header_timeout: Duration::from_secs(cli.http_header_timeout_secs),
                max_pending_connections: cli.max_pending_connections,
                max_pending_connections_per_ip: cli.max_pending_connections_per_ip,
                max_rooms_per_connection: cli.max_rooms_per_connection,
                max_rooms_per_identity: cli.max_rooms_per_identity,
                max_connections_per_identity: cli.max_connections_per_identity,
                max_tracks_per_publisher: cli.max_tracks_per_publisher,
                ..Limits::default()
            },
            shutdown_grace: Duration::from_secs(cli.shutdown_grace_secs),
            metrics_addr: cli.metrics_addr,
            rust_log: cli.rust_log,
            log_format: cli.log_format,
            cluster,
            turn,
            tls,
        })
    }

    /// Whether the server runs in development mode (random secret, `/dev/token`).
    pub fn is_dev(&self) -> bool {
        matches!(self.jwt_key, JwtKey::Dev(_))
    }
}

/// Default forwarding budget per core. docs/BENCHMARKS.md: on 2 cores shared
/// with the load tester, a fan-out to 500 subscribers (1000 tracks) held
/// 100 % delivery and 600 collapsed without admission control; 400 per core
/// keeps a margin below that.
pub const FORWARDED_TRACKS_PER_CORE: usize = 400;

/// `MAX_FORWARDED_TRACKS` when unset: the per-core budget times the cores
/// this process may use.
pub fn default_forward_limit() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    FORWARDED_TRACKS_PER_CORE * cores
}

/// `TURN_URLS`, `TURN_SECRET`, `TURN_TTL`.
fn turn_settings(cli: &Cli, errors: &mut Vec<String>) -> Option<TurnSettings> {
    let urls: Vec<String> = cli
        .turn_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    for url in &urls {
        if !["turn:", "turns:", "stun:", "stuns:"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            errors.push(format!(
                "TURN_URLS entry `{url}` must start with turn:, turns:, stun: or stuns:"
            ));
        }
    }
    let secret = cli.turn_secret.as_ref().map(|s| s.as_bytes().to_vec());
    if secret.as_ref().is_some_and(Vec::is_empty) {
        errors.push("TURN_SECRET is set but empty".to_owned());
    }
    if urls.is_empty() {
        if secret.is_some() {
            errors.push("TURN_SECRET is set but TURN_URLS is not".to_owned());
        }
        return None;
    }
    if secret.is_none() && urls.iter().any(|u| u.starts_with("turn")) {
        errors.push(
            "TURN_URLS has turn:/turns: URLs: set TURN_SECRET (the TURN server's \
             static-auth-secret, use-auth-secret in coturn)"
                .to_owned(),
        );
    }
    if cli.turn_ttl < 60 {
        errors.push("TURN_TTL must be at least 60 seconds".to_owned());
    }
    Some(TurnSettings {
        urls,
        secret,
        ttl: Duration::from_secs(cli.turn_ttl),
    })
}

/// `PUBLIC_IP` and `STUN_URL`, checked against `ANNOUNCED_IPS`.
fn public_ip_setting(cli: &Cli, errors: &mut Vec<String>) -> PublicIpSetting {
    let entries: Vec<String> = cli
        .public_ip
        .iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if entries.iter().any(|e| e.eq_ignore_ascii_case("auto")) {
        if entries.len() > 1 {
            errors.push("PUBLIC_IP=auto cannot be combined with addresses".to_owned());
            return PublicIpSetting::Off;
        }
        if cli.announced_ips.len() > 1 {
            errors.push(
                "PUBLIC_IP=auto finds one public address; with several ANNOUNCED_IPS \
                 map each with PUBLIC/PRIVATE"
                    .to_owned(),
            );
        }
        return match cli.stun_url.as_deref().map(crate::net::stun::parse_url) {
            None => {
                errors.push("PUBLIC_IP=auto needs STUN_URL (stun:host:port)".to_owned());
                PublicIpSetting::Off
            }
            Some(Err(e)) => {
                errors.push(e);
                PublicIpSetting::Off
            }
            Some(Ok(stun_server)) => PublicIpSetting::Auto { stun_server },
        };
    }
    if let Some(Err(e)) = cli.stun_url.as_deref().map(crate::net::stun::parse_url) {
        errors.push(e);
    }
    if entries.is_empty() {
        if !cli.public_ip.is_empty() {
            errors.push(
                "PUBLIC_IP is set but empty: give the public address (or unset it)".to_owned(),
            );
        }
        return PublicIpSetting::Off;
    }
    match NatMap::parse(&entries) {
        Ok(map) => {
            for private in map.private_addresses() {
                if !cli.announced_ips.is_empty() && !cli.announced_ips.contains(&private) {
                    errors.push(format!(
                        "PUBLIC_IP maps {private}, which is not in ANNOUNCED_IPS"
                    ));
                }
            }
            PublicIpSetting::Static(map)
        }
        Err(e) => {
            errors.extend(e);
            PublicIpSetting::Off
        }
    }
}

fn random_node_id() -> String {
    format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[cfg(test)]
mod tests;
