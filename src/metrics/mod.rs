//! Prometheus metrics (`GET /metrics`; `docs/OPERATIONS.md` lists them).
//!
//! Counters and histograms are process-wide (one server per process in
//! production; tests that run several servers in one process see their sum)
//! and are updated where things happen, through the functions of this
//! module. Gauges that describe the server's state (rooms, participants,
//! connections) are read from the state at each scrape ([`render`]), so
//! they can never drift. Labels are bounded: message types, error codes,
//! reasons and states are closed sets; nothing is labelled by room,
//! participant or track.

pub mod heap;
pub mod media;
pub mod process;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process, registered once.
pub struct Metrics {
    registry: Registry,
    // State, set at each scrape.
    rooms: IntGauge,
    participants: IntGauge,
    publishers: IntGauge,
    published_tracks: IntGauge,
    forwarded_tracks: IntGauge,
    forward_limit: IntGauge,
    connections: IntGauge,
    connection_limit: IntGauge,
    media_ports_in_use: IntGauge,
    media_ports_left: IntGauge,
    tokio_tasks: IntGauge,
    udp_sockets: IntGauge,
    heap_live_bytes: IntGauge,
    /// PeerConnections by kind (`publish`, `subscribe`) and state.
    pub peer_connections: IntGaugeVec,
    // Events.
    connections_accepted: IntCounter,
    connections_refused: IntCounterVec,
    messages_received: IntCounterVec,
    errors_sent: IntCounterVec,
    auth_failures: IntCounterVec,
    reconnects_sent: IntCounterVec,
    negotiations: IntCounterVec,
    ice_restarts: IntCounterVec,
    leases: IntCounterVec,
    redis_errors: IntCounter,
    forwarded_frames: IntCounterVec,
    /// Media totals from the WebRTC statistics ([`media`]).
    pub media_packets: IntCounterVec,
    /// Bytes, as `media_packets`.
    pub media_bytes: IntCounterVec,
    /// NACKs and PLIs, by direction.
    pub media_feedback: IntCounterVec,
    /// Packets the receivers of our streams reported lost.
    pub media_packets_lost: IntCounter,
    /// Round-trip times reported by subscribers' receivers.
    pub media_rtt: Histogram,
    negotiation_seconds: HistogramVec,
    subscribe_seconds: Histogram,
    auth_seconds: Histogram,
}

/// The bucket bounds (seconds) of the signaling latency histograms.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name (a constant of this module)");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once, in Metrics::new");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("valid metric and label names (constants of this module)");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once, in Metrics::new");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name (a constant of this module)");
    r.register(Box::new(g.clone()))
        .expect("each metric is registered once, in Metrics::new");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid histogram (constant name, increasing buckets)");
    r.register(Box::new(h.clone()))
        .expect("each metric is registered once, in Metrics::new");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        // CPU seconds, resident memory, open FDs, threads (Linux).
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        let peer_connections = IntGaugeVec::new(
            Opts::new(
                "sfu_peer_connections",
                "PeerConnections by kind (publish, subscribe) and connection state",
            ),
            &["kind", "state"],
        )
        .expect("valid metric and label names");
        r.register(Box::new(peer_connections.clone()))
            .expect("registered once");
        let negotiation_seconds = HistogramVec::new(
            HistogramOpts::new(
                "sfu_negotiation_seconds",
                "Time from an offer to its answer being applied: publish (client offer to our answer sent), subscribe (our offer to the client's answer applied)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )
        .expect("valid histogram");
        r.register(Box::new(negotiation_seconds.clone()))
            .expect("registered once");
        Metrics {
            rooms: gauge(&r, "sfu_rooms", "Rooms open on this node"),
            participants: gauge(&r, "sfu_participants", "Room memberships on this node"),
            publishers: gauge(&r, "sfu_publishers", "Participants with live published tracks"),
            published_tracks: gauge(&r, "sfu_published_tracks", "Published tracks whose media reached the server"),
            forwarded_tracks: gauge(&r, "sfu_forwarded_tracks", "Tracks forwarded to subscribers (the forwarding budget in use)"),
            forward_limit: gauge(&r, "sfu_forward_limit", "MAX_FORWARDED_TRACKS (0: no limit)"),
            connections: gauge(&r, "sfu_connections", "Signaling sessions: WebSocket clients and sessions other nodes route here"),
            connection_limit: gauge(&r, "sfu_connection_limit", "MAX_CONNECTIONS"),
            media_ports_in_use: gauge(&r, "sfu_media_ports_in_use", "UDP ports of RTC_MIN_PORT..RTC_MAX_PORT held by PeerConnections (0 without a range)"),
            media_ports_left: gauge(&r, "sfu_media_ports_left", "UDP ports of the range left for new PeerConnections (-1 without a range: no limit)"),
            tokio_tasks: gauge(&r, "sfu_tokio_tasks", "Tasks alive on the tokio runtime"),
            heap_live_bytes: gauge(&r, "sfu_heap_live_bytes", "Heap bytes allocated and not freed (-1: the binary's counting allocator is not installed)"),
            udp_sockets: gauge(&r, "sfu_udp_sockets", "UDP sockets among the process's open file descriptors (-1: /proc unreadable)"),
            peer_connections,
            connections_accepted: counter(&r, "sfu_connections_accepted_total", "WebSocket upgrades accepted"),
            connections_refused: counter_vec(&r, "sfu_connections_refused_total", "WebSocket upgrades refused, by reason", &["reason"]),
            messages_received: counter_vec(&r, "sfu_messages_received_total", "Client messages received, by type (`invalid`: not a protocol message)", &["type"]),
            errors_sent: counter_vec(&r, "sfu_errors_sent_total", "`error` messages sent, by code", &["code"]),
            auth_failures: counter_vec(&r, "sfu_auth_failures_total", "Failed authentications, by reason", &["reason"]),
            reconnects_sent: counter_vec(&r, "sfu_reconnects_sent_total", "`reconnect` messages sent, by reason", &["reason"]),
            negotiations: counter_vec(&r, "sfu_negotiations_total", "SDP negotiations by kind (publish, subscribe) and outcome (started, completed, failed)", &["kind", "outcome"]),
            ice_restarts: counter_vec(&r, "sfu_ice_restarts_total", "ICE restarts of subscribe PeerConnections, by cause", &["cause"]),
            leases: counter_vec(&r, "sfu_room_leases_total", "Cluster room lease events (claimed, renewed, lost)", &["event"]),
            redis_errors: counter(&r, "sfu_redis_errors_total", "Redis calls that failed or timed out"),
            forwarded_frames: counter_vec(&r, "sfu_forwarded_frames_total", "Signaling frames between nodes, by direction (in, out)", &["direction"]),
            media_packets: counter_vec(&r, "sfu_media_packets_total", "RTP packets: received from publishers (in), sent to subscribers (out)", &["direction"]),
            media_bytes: counter_vec(&r, "sfu_media_bytes_total", "RTP payload bytes: received from publishers (in), sent to subscribers (out)", &["direction"]),
            media_feedback: counter_vec(&r, "sfu_media_feedback_total", "NACKs and PLIs: sent to publishers (in), received from subscribers (out)", &["direction", "type"]),
            media_packets_lost: counter(&r, "sfu_media_packets_lost_total", "Packets subscribers' receivers reported lost"),
            media_rtt: histogram(&r, "sfu_media_rtt_seconds", "Round-trip times subscribers' receivers reported", &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
            negotiation_seconds,
            subscribe_seconds: histogram(&r, "sfu_subscribe_seconds", "Time from subscribe-request to the subscription's answer applied (tracks forwarding)", LATENCY_BUCKETS),
            auth_seconds: histogram(&r, "sfu_auth_seconds", "Time to verify a token", &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1]),
            registry: r,
        }
        .with_every_label()
    }

    /// Creates every series of the closed label sets at 0, so that each
    /// appears from the first scrape (rates start from 0, dashboards find
    /// every series, absent means broken).
    fn with_every_label(self) -> Metrics {
        let touch = |c: &IntCounterVec, values: &[&str]| {
            for v in values {
                c.with_label_values(&[v]);
            }
        };
        touch(&self.connections_refused, REFUSED);
        touch(&self.messages_received, signaling::ClientType::NAMES);
        self.messages_received.with_label_values(&["invalid"]);
        for code in signaling::ErrorCode::ALL {
            self.errors_sent.with_label_values(&[code.as_str()]);
        }
        for reason in signaling::ReconnectReason::ALL {
            self.reconnects_sent.with_label_values(&[reason.as_str()]);
        }
        touch(&self.auth_failures, AUTH_FAILURES);
        for kind in NEGOTIATION_KINDS {
            for outcome in ["started", "completed", "failed"] {
                self.negotiations.with_label_values(&[kind, outcome]);
            }
            self.negotiation_seconds.with_label_values(&[kind]);
            for state in PC_STATES {
                self.peer_connections.with_label_values(&[kind, state]);
            }
        }
        touch(&self.ice_restarts, ICE_RESTART_CAUSES);
        touch(&self.leases, &["claimed", "renewed", "lost"]);
        touch(&self.forwarded_frames, DIRECTIONS);
        touch(&self.media_packets, DIRECTIONS);
        touch(&self.media_bytes, DIRECTIONS);
        for d in DIRECTIONS {
            for t in ["nack", "pli"] {
                self.media_feedback.with_label_values(&[d, t]);
            }
        }
        self
    }
}

/// `reason` values of `sfu_connections_refused_total`.
const REFUSED: &[&str] = &["limit", "draining", "pending", "quota"];
/// `reason` values of `sfu_auth_failures_total` (`AuthError::reason`).
pub const AUTH_FAILURES: &[&str] = &[
    "malformed",
    "algorithm",
    "signature",
    "expired",
    "not-yet-valid",
    "claims",
    "server",
];
/// `kind` values of negotiations and PeerConnections.
const NEGOTIATION_KINDS: &[&str] = &["publish", "subscribe"];
/// `state` values of `sfu_peer_connections`.
pub const PC_STATES: &[&str] = &[
    "new",
    "connecting",
    "connected",
    "disconnected",
    "failed",
    "closed",
];
/// `cause` values of `sfu_ice_restarts_total` (`RestartCause::label`).
pub const ICE_RESTART_CAUSES: &[&str] = &["client-restarted", "stuck", "half-applied"];
/// `direction` values.
const DIRECTIONS: &[&str] = &["in", "out"];

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// What the server's state says at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Rooms open.
    pub rooms: usize,
    /// Room memberships.
    pub participants: usize,
    /// Participants with live tracks.
    pub publishers: usize,
    /// Live published tracks.
    pub published_tracks: usize,
    /// Tracks forwarded to subscribers.
    pub forwarded_tracks: usize,
    /// The forwarding limit (0: none).
    pub forward_limit: usize,
    /// Sessions holding a connection slot.
    pub connections: usize,
    /// Connection slots.
    pub connection_limit: usize,
    /// Media ports in use and left; `None` without a port range.
    pub media_ports: Option<(usize, usize)>,
}

fn int(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The text exposition of every metric, with the state gauges set from
/// `snapshot`.
pub fn render(snapshot: Snapshot) -> String {
    let m = get();
    m.rooms.set(int(snapshot.rooms));
    m.participants.set(int(snapshot.participants));
    m.publishers.set(int(snapshot.publishers));
    m.published_tracks.set(int(snapshot.published_tracks));
    m.forwarded_tracks.set(int(snapshot.forwarded_tracks));
    m.forward_limit.set(int(snapshot.forward_limit));
    m.connections.set(int(snapshot.connections));
    m.connection_limit.set(int(snapshot.connection_limit));
    let (in_use, left) = snapshot
        .media_ports
        .map_or((0, -1), |(u, l)| (int(u), int(l)));
    m.media_ports_in_use.set(in_use);
    m.media_ports_left.set(left);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        m.tokio_tasks.set(int(rt.metrics().num_alive_tasks()));
    }
    m.udp_sockets.set(process::udp_sockets().map_or(-1, int));
    m.heap_live_bytes.set(heap::live_bytes().unwrap_or(-1));
    let mut out = Vec::new();
    // Text encoding of well-formed metrics into a Vec cannot fail; an
    // error leaves what was written.
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A WebSocket upgrade was accepted.
pub fn connection_accepted() {
    get().connections_accepted.inc();
}

/// A WebSocket upgrade was refused (`limit`, `draining`, `quota`, ...).
pub fn connection_refused(reason: &'static str) {
    get().connections_refused.with_label_values(&[reason]).inc();
}

/// A client message of this wire type (or `invalid`) arrived.
pub fn message_received(kind: &'static str) {
    get().messages_received.with_label_values(&[kind]).inc();
}

/// An `error` with this code was sent.
pub fn error_sent(code: &'static str) {
    get().errors_sent.with_label_values(&[code]).inc();
}

/// A token was refused (`invalid`, `expired`, ... see `auth`).
pub fn auth_failed(reason: &'static str) {
    get().auth_failures.with_label_values(&[reason]).inc();
}

/// A token was verified in `took`.
pub fn auth_timed(took: Duration) {
    get().auth_seconds.observe(took.as_secs_f64());
}

/// A `reconnect` with this reason was sent.
pub fn reconnect_sent(reason: &'static str) {
    get().reconnects_sent.with_label_values(&[reason]).inc();
}

/// A negotiation of `kind` (`publish`, `subscribe`) started.
pub fn negotiation_started(kind: &'static str) {
    get()
        .negotiations
        .with_label_values(&[kind, "started"])
        .inc();
}

/// A negotiation of `kind` completed in `took`.
pub fn negotiation_completed(kind: &'static str, took: Duration) {
    let m = get();
    m.negotiations.with_label_values(&[kind, "completed"]).inc();
    m.negotiation_seconds
        .with_label_values(&[kind])
        .observe(took.as_secs_f64());
}

/// A negotiation of `kind` failed.
pub fn negotiation_failed(kind: &'static str) {
    get()
        .negotiations
        .with_label_values(&[kind, "failed"])
        .inc();
}

/// A subscription's tracks are forwarded, `took` after its request.
pub fn subscribed(took: Duration) {
    get().subscribe_seconds.observe(took.as_secs_f64());
}

/// A subscribe PeerConnection restarted ICE for `cause`.
pub fn ice_restart(cause: &'static str) {
    get().ice_restarts.with_label_values(&[cause]).inc();
}

/// A room lease was `claimed`, `renewed` or `lost`.
pub fn lease(event: &'static str) {
    get().leases.with_label_values(&[event]).inc();
}

/// A Redis call failed.
pub fn redis_error() {
    get().redis_errors.inc();
}

/// A signaling frame went to (`out`) or came from (`in`) another node.
pub fn forwarded_frame(direction: &'static str) {
    get().forwarded_frames.with_label_values(&[direction]).inc();
}
