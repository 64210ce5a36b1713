//! The media adapter: the only module that names rheomesh or webrtc types.
//!
//! One [`MediaEngine`] (a rheomesh `Worker`) per process, one [`RoomMedia`]
//! (a `Router`) per room, and per participant per room one publisher actor
//! ([`PublisherHandle`]) and one subscriber actor ([`SubscriberHandle`]).
//! Each actor owns its transport and makes every call on it, in order; this is
//! what keeps rheomesh's races (concurrent `publish()`, the subscribe
//! renegotiation flag) away from users. Results flow back as [`MediaEvent`]s.

pub mod budget;
pub mod candidates;
pub mod client_sdp;
mod codecs;
mod liveness;
mod negotiation;
pub mod ports;
mod publisher;
pub mod sdp;
mod settle;
mod stats;
mod subscriber;
mod teardown;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use rheomesh::config::{PortRange, WebRTCTransportConfig, WorkerConfig};
use rheomesh::router::Router;
use rheomesh::worker::Worker;
use signaling::{CandidateInit, ClientType, RequestId, TrackInfo};
use tokio::sync::{mpsc, Mutex};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::configuration::RTCConfiguration;

use crate::config::MediaSettings;
use crate::net::{NatMap, PublicIpSetting};
use budget::Budget;
use ports::PortBudget;

pub use publisher::PublisherHandle;
pub use subscriber::SubscriberHandle;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The rheomesh worker could not start (e.g. the relay port is taken).
    #[error("media worker: {0}")]
    Worker(String),
    /// A media task panicked (a bug in the media library or here).
    #[error("media task failed: {0}")]
    TaskFailed(String),
}

/// Why a media request failed, in the media layer's terms; the session
/// maps each kind to a protocol error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client's input cannot be used (its SDP, a candidate, an
    /// answer without an offer).
    Rejected,
    /// What the request names is not there (a publisher, a track).
    Missing,
    /// The node's forwarding budget is used up.
    OverBudget,
    /// The media library failed.
    Internal,
}

/// What the media actors tell their session.
#[derive(Debug)]
pub enum MediaEvent {
    /// Answer to a publish offer.
    PublishAnswer {
        /// Room.
        room: String,
        /// SDP.
        answer: String,
        /// Echo of the offer's requestId.
        request_id: Option<RequestId>,
    },
    /// Server candidate for the publish PeerConnection.
    PublishCandidate {
        /// Room.
        room: String,
        /// Candidate.
        candidate: CandidateInit,
    },
    /// The tracks whose media reached the server changed (complete list; empty = none).
    PublishTracks {
        /// Room.
        room: String,
        /// Live tracks.
        tracks: Vec<TrackInfo>,
    },
    /// Published tracks died inside the media library (they are announced
    /// no more); the client has to publish again on a new PeerConnection.
    PublishLost {
        /// Room.
        room: String,
        /// The lost tracks (all found in one check).
        track_ids: Vec<String>,
    },
    /// Offer of the subscribe PeerConnection.
    SubscribeOffer {
        /// Room.
        room: String,
        /// Publisher the offer is about.
        publisher_id: String,
        /// SDP.
        offer: String,
        /// That publisher's tracks on this PeerConnection.
        tracks: Vec<TrackInfo>,
        /// Echo of the subscribe-request's requestId.
        request_id: Option<RequestId>,
    },
    /// A track the publisher announced has no media in the library (a
    /// subscription to it failed as missing for its whole retry time).
    TrackMissing {
        /// Room.
        room: String,
        /// Its publisher.
        publisher_id: String,
        /// The track.
        track_id: String,
    },
    /// Server candidate for the subscribe PeerConnection.
    SubscribeCandidate {
        /// Room.
        room: String,
        /// Candidate.
        candidate: CandidateInit,
    },
    /// Answer to subscribe-prepare.
    SubscribePrepareAnswer {
        /// Room.
        room: String,
        /// SDP.
        answer: String,
        /// Echo.
        request_id: Option<RequestId>,
    },
    /// A request failed.
    Error {
        /// Room.
        room: String,
        /// Why.
        failure: Failure,
        /// Reason.
        message: String,
        /// Type of the failed request.
        request_type: ClientType,
        /// Echo.
        request_id: Option<RequestId>,
    },
}

/// Sender of media events to one session.
pub type EventSink = mpsc::Sender<MediaEvent>;

/// The process-wide media engine (one rheomesh `Worker`).
pub struct MediaEngine {
    worker: Arc<Mutex<Worker>>,
    transport_config: WebRTCTransportConfig,
    candidates: Arc<candidates::CandidateRules>,
    budget: Arc<Budget>,
    stats_interval: Option<std::time::Duration>,
    ports: Arc<PortBudget>,
    /// `PUBLIC_IP`: applied to every candidate and SDP the server sends.
    nat: Arc<NatMap>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine").finish_non_exhaustive()
    }
}

impl MediaEngine {
    /// Starts the worker. `WorkerConfig` is filled in explicitly: its default
    /// panics on hosts whose only interface is loopback.
    pub async fn new(settings: &MediaSettings) -> Result<Arc<MediaEngine>, MediaError> {
        let nat = match &settings.public_ip {
            PublicIpSetting::Off => NatMap::default(),
            PublicIpSetting::Static(map) => map.clone(),
            PublicIpSetting::Auto { .. } => {
                return Err(MediaError::Worker(
                    "PUBLIC_IP=auto must be resolved before the media engine starts".to_owned(),
                ))
            }
        };
        if !nat.is_empty() {
            tracing::info!(public = ?nat.public_addresses(), "PUBLIC_IP: candidates and SDP carry the public address");
        }
        let private_ip = settings
            .announced_ips
            .first()
            .map(IpAddr::to_string)
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        // rheomesh fault: `Worker::new` always starts a relay listener on
        // 0.0.0.0 (whatever HOST says), unauthenticated, one connection at
        // a time, one error line per KiB of garbage. We never relay media
        // between nodes through it (the cluster forwards signaling), so it
        // is closed again at once; closing needs its port, so a free one is
        // chosen when RELAY_PORT is 0.
        let relay_port = match settings.relay_port {
            0 => std::net::TcpListener::bind(("0.0.0.0", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| MediaError::Worker(format!("no free port for the relay: {e}")))?,
            port => port,
        };
        let worker = Worker::new(WorkerConfig {
            relay_server_tcp_port: relay_port,
            private_ip,
        })
        .await
        .map_err(|e| MediaError::Worker(e.to_string()))?;
        close_relay_listener(&worker, relay_port).await;

        let mut network_types = vec![NetworkType::Udp4];
        if settings.announced_ips.iter().any(IpAddr::is_ipv6) {
            network_types.push(NetworkType::Udp6);
        }
        let ports = PortBudget::new(
            settings.port_range,
            settings.ice_servers.len(),
            network_types.len(),
        );
        let transport_config = WebRTCTransportConfig {
            configuration: RTCConfiguration {
                ice_servers: settings.ice_servers.iter().map(|u| ice_server(u)).collect(),
                ..Default::default()
            },
            announced_ips: settings.announced_ips.clone(),
            network_types,
            port_range: settings.port_range.map(|(min, max)| PortRange { min, max }),
            ..Default::default()
        };
        Ok(Arc::new(MediaEngine {
            worker,
            transport_config,
            // The public addresses are this server's own too: a client
            // candidate there would make it probe itself through the NAT.
            candidates: candidates::CandidateRules::new(
                settings.candidates.clone(),
                &[settings.announced_ips.clone(), nat.public_addresses()].concat(),
                settings.allow_mdns_candidates,
            ),
            budget: Budget::forwarding(settings.max_forwarded_tracks),
            stats_interval: settings.stats_interval.0,
            ports,
            nat: Arc::new(nat),
        }))
    }

    /// The node's media port budget (`RTC_MIN_PORT..RTC_MAX_PORT`).
    pub fn ports(&self) -> &Arc<PortBudget> {
        &self.ports
    }

    /// The node's budget of forwarded tracks (admission control).
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// A router for a new room.
    pub async fn create_room(self: &Arc<Self>) -> RoomMedia {
        let router = self.worker.lock().await.new_router(codecs::media_config());
        RoomMedia {
            router,
            engine: Arc::clone(self),
        }
    }

    /// Stops the worker (relay server) at shutdown.
    pub async fn close(&self) {
        self.worker.lock().await.close();
    }
}

/// Stops rheomesh's relay listener (see [`MediaEngine::new`]). Its stop
/// signal is lost when sent before the listener task first ran, so it is
/// sent until the port refuses connections, bounded.
async fn close_relay_listener(worker: &Arc<Mutex<Worker>>, port: u16) {
    for _ in 0..200 {
        worker.lock().await.close();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::debug!(port, "rheomesh relay listener closed");
                return;
            }
            // Connected to itself (the kernel gave the probe the free port
            // as its source): nothing listens there any more.
            Ok(s) if s.local_addr().is_ok_and(|a| a.port() == port) => return,
            // Still listening (the probe is dropped at once: the relay
            // sees an empty connection), or another error: try again.
            _ => {}
        }
    }
    tracing::warn!(
        port,
        "rheomesh's relay listener could not be closed; it accepts TCP on 0.0.0.0:{port}"
    );
}

/// Parses `turn:user:pass@host:port` into an ICE server with credentials.
fn ice_server(url: &str) -> RTCIceServer {
    if let Some((scheme, rest)) = url.split_once(':') {
        if let Some((creds, host)) = rest.rsplit_once('@') {
            if let Some((user, pass)) = creds.split_once(':') {
                return RTCIceServer {
                    urls: vec![format!("{scheme}:{host}")],
                    username: user.to_owned(),
                    credential: pass.to_owned(),
                };
            }
        }
    }
    RTCIceServer {
        urls: vec![url.to_owned()],
        ..Default::default()
    }
}

/// The media side of one room (a rheomesh `Router`).
pub struct RoomMedia {
    router: Arc<Mutex<Router>>,
    engine: Arc<MediaEngine>,
}

impl std::fmt::Debug for RoomMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomMedia").finish_non_exhaustive()
    }
}

impl RoomMedia {
    fn context(&self, room: &str, events: EventSink) -> ActorContext {
        ActorContext {
            room: room.to_owned(),
            router: Arc::clone(&self.router),
            config: self.engine.transport_config.clone(),
            candidates: candidates::CandidateGate::new(Arc::clone(&self.engine.candidates)),
            events,
            budget: Arc::clone(&self.engine.budget),
            stats_interval: self.engine.stats_interval,
            ports: Arc::clone(&self.engine.ports),
            nat: Arc::clone(&self.engine.nat),
        }
    }

    /// Starts a publisher actor for one participant.
    pub fn publisher(&self, room: &str, events: EventSink) -> PublisherHandle {
        publisher::spawn(self.context(room, events))
    }

    /// Starts a subscriber actor for one participant.
    pub fn subscriber(&self, room: &str, events: EventSink) -> SubscriberHandle {
        subscriber::spawn(self.context(room, events))
    }

    /// Closes the router (the room is empty).
    pub async fn close(&self) {
        self.router.lock().await.close();
    }
}

/// What the publisher and subscriber actors of one participant in one room
/// share: where to create transports, and where to report.
pub(crate) struct ActorContext {
    room: String,
    router: Arc<Mutex<Router>>,
    config: WebRTCTransportConfig,
    /// The client's candidates this PeerConnection uses.
    candidates: candidates::CandidateGate,
    events: EventSink,
    budget: Arc<Budget>,
    /// How often the transports' statistics are sampled (`None`: never).
    stats_interval: Option<std::time::Duration>,
    ports: Arc<PortBudget>,
    nat: Arc<NatMap>,
}

impl ActorContext {
    /// Sends an event to the session (waits for room: it is server-internal).
    /// Every server candidate and SDP passes here, and gets `PUBLIC_IP`.
    async fn emit(&self, event: MediaEvent) {
        let event = if self.nat.is_empty() {
            event
        } else {
            public_addresses(&self.nat, event)
        };
        let _ = self.events.send(event).await;
    }

    /// Reports a failed request.
    async fn error(
        &self,
        request_type: ClientType,
        failure: Failure,
        message: String,
        request_id: Option<RequestId>,
    ) {
        self.emit(MediaEvent::Error {
            room: self.room.clone(),
            failure,
            message,
            request_type,
            request_id,
        })
        .await;
    }

    /// How long a closing transport may wait for its candidate gathering.
    fn gathering_limit(&self) -> std::time::Duration {
        teardown::gathering_limit(!self.config.configuration.ice_servers.is_empty())
    }

    /// Adds a client candidate the gate admitted to `transport`; a
    /// refusal is reported as an error of `request`.
    async fn add_candidate<T: rheomesh::transport::Transport>(
        &self,
        transport: &T,
        candidate: &CandidateInit,
        request: ClientType,
    ) {
        if let Err(e) = transport
            .add_ice_candidate(candidates::to_rtc_candidate(candidate))
            .await
        {
            let message = format!("candidate rejected: {e}");
            self.error(request, Failure::Rejected, message, None).await;
        }
    }

    /// Whether a client candidate goes to ICE ([`candidates`]).
    fn accepts(&mut self, candidate: &CandidateInit) -> bool {
        match self.candidates.admit(candidate) {
            Ok(()) => true,
            Err(why) => {
                tracing::debug!(room = %self.room, "client candidate dropped: {why}");
                false
            }
        }
    }

    /// A client's SDP without the candidates this PeerConnection does not
    /// use; an error for SDP whose candidates could not be filtered.
    fn filter_candidates(&mut self, sdp: String) -> Result<String, String> {
        if !sdp.contains("candidate") {
            return Ok(sdp);
        }
        let before = self.candidates.dropped();
        let out = self.candidates.filter_sdp(&sdp)?;
        let dropped = self.candidates.dropped() - before;
        if dropped > 0 {
            tracing::debug!(room = %self.room, dropped, "client candidates in SDP dropped");
        }
        Ok(out)
    }
}

/// `event` with the interface addresses in its candidates and SDP mapped
/// to the public ones (`PUBLIC_IP`).
fn public_addresses(nat: &NatMap, event: MediaEvent) -> MediaEvent {
    match event {
        MediaEvent::PublishAnswer {
            room,
            answer,
            request_id,
        } => MediaEvent::PublishAnswer {
            room,
            answer: nat.rewrite_sdp(&answer),
            request_id,
        },
        MediaEvent::SubscribeOffer {
            room,
            publisher_id,
            offer,
            tracks,
            request_id,
        } => MediaEvent::SubscribeOffer {
            room,
            publisher_id,
            offer: nat.rewrite_sdp(&offer),
            tracks,
            request_id,
        },
        MediaEvent::SubscribePrepareAnswer {
            room,
            answer,
            request_id,
        } => MediaEvent::SubscribePrepareAnswer {
            room,
            answer: nat.rewrite_sdp(&answer),
            request_id,
        },
        MediaEvent::PublishCandidate {
            room,
            mut candidate,
        } => {
            if let Some(c) = nat.rewrite_candidate(&candidate.candidate) {
                candidate.candidate = c;
            }
            MediaEvent::PublishCandidate { room, candidate }
        }
        MediaEvent::SubscribeCandidate {
            room,
            mut candidate,
        } => {
            if let Some(c) = nat.rewrite_candidate(&candidate.candidate) {
                candidate.candidate = c;
            }
            MediaEvent::SubscribeCandidate { room, candidate }
        }
        other => other,
    }
}

/// Runs a future that may not be `Send` (rheomesh's `subscribe()` is not) on
/// a blocking thread that drives it with the runtime's handle. Tasks it spawns
/// still land on the multi-threaded runtime, where forwarding belongs; a
/// `LocalSet` would pin them to one thread.
pub(crate) async fn off_runtime<T, F, Fut>(f: F) -> Result<T, MediaError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f()))
        .await
        .map_err(|e| MediaError::TaskFailed(e.to_string()))
}

/// Outcome of an inbox `try_send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The actor's inbox is full: the client sends faster than media can follow.
    Busy,
    /// The actor has stopped.
    Closed,
}

impl<T> From<mpsc::error::TrySendError<T>> for SendError {
    fn from(e: mpsc::error::TrySendError<T>) -> Self {
        match e {
            mpsc::error::TrySendError::Full(_) => SendError::Busy,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        }
    }
}

/// Capacity of an actor's inbox (client commands).
pub(crate) const INBOX: usize = 256;
