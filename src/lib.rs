//! rheo-sfu: a pure-Rust WebRTC SFU.
//!
//! A warp WebSocket server authenticates JWTs and maps the signaling protocol
//! (`docs/PROTOCOL.md`) onto rheomesh routers and transports. [`run`] is the
//! whole server: the caller binds the listener, so tests run the real server
//! in-process on `127.0.0.1:0`.
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
mod http;
mod listener;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod net;
pub mod quota;
pub mod room;
pub mod routing;
mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use warp::Filter;

use crate::auth::{AuthConfig, Verifier};
use crate::cluster::redis::RedisCluster;
use crate::cluster::{Cluster, LocalCluster};
use crate::config::Config;
use crate::media::MediaEngine;
use crate::room::Rooms;
use crate::routing::redis::RedisRouter;
use crate::routing::{LocalRouter, Router};

/// Shared state of one running server.
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// Token verifier.
    pub verifier: Verifier,
    /// Rooms of this node.
    pub rooms: Rooms,
    /// Connection slots; a session holds one permit.
    pub connections: Arc<Semaphore>,
    /// True once shutdown has begun.
    pub draining: watch::Receiver<bool>,
    /// Room ownership and the node registry (single node or Redis).
    pub cluster: Arc<dyn Cluster>,
    /// Signaling links to the nodes that hold rooms held elsewhere.
    pub router: Arc<dyn Router>,
    /// Quotas per identity.
    pub quotas: Arc<quota::Quotas>,
    /// Media ports (`RTC_MIN_PORT..RTC_MAX_PORT`) in use and left.
    pub media_ports: Arc<media::ports::PortBudget>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The JWT key is unusable.
    #[error("JWT configuration: {0}")]
    Auth(#[from] auth::AuthError),
    /// The media engine did not start.
    #[error(transparent)]
    Media(#[from] media::MediaError),
    /// Cluster mode could not reach Redis.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// `METRICS_ADDR` could not be bound.
    #[error("METRICS_ADDR {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `PUBLIC_IP=auto` found no public address.
    #[error("{0}")]
    PublicIp(String),
    /// The TLS certificate or key is unusable.
    #[error("{0}")]
    Tls(String),
}

/// A server that has started: its address and how to stop it.
pub struct Server {
    state: Arc<AppState>,
    media: Arc<MediaEngine>,
}

impl Server {
    /// Builds the state: verifier, media engine (rheomesh worker), rooms.
    pub async fn new(config: Config) -> Result<(Server, watch::Sender<bool>), RunError> {
        let verifier = Verifier::new(&AuthConfig {
            key: config.jwt_key.clone(),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway_secs: config.jwt_leeway_secs,
        })?;
        if config.is_dev() {
            tracing::warn!(
                "DEVELOPMENT MODE: no JWT_SECRET or JWT_PUBLIC_KEY_FILE set; tokens are signed with a random secret \
                 and anyone can get one from GET /dev/token. Configure a key before exposing this server."
            );
        } else {
            tracing::info!(family = %verifier.family(), "verifying tokens");
        }
        let mut media_settings = config.media.clone();
        if let net::PublicIpSetting::Auto { stun_server } = &config.media.public_ip {
            let local = config.media.announced_ips.first().copied();
            let ip = net::stun::discover(stun_server, local)
                .await
                .map_err(RunError::PublicIp)?;
            tracing::info!(public_ip = %ip, stun = %stun_server, "PUBLIC_IP=auto: public address found");
            media_settings.public_ip = net::PublicIpSetting::Static(net::NatMap::all_to(ip));
        }
        let media = MediaEngine::new(&media_settings).await?;
        let (drain_tx, drain_rx) = watch::channel(false);
        // The node's registry entry reports the rooms' load: the cluster
        // counts them through the shared registry, which refers to nothing.
        let registry = room::Registry::new();
        // The cluster backend and the signaling router come in pairs.
        let (cluster, router): (Arc<dyn Cluster>, Arc<dyn Router>) = match &config.cluster {
            None => (LocalCluster::new(), Arc::new(LocalRouter)),
            Some(settings) => {
                let registry = Arc::clone(&registry);
                let load: cluster::redis::LoadFn = Arc::new(move || {
                    let c = registry.counts();
                    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                    cluster::Load {
                        rooms: n(c.rooms),
                        participants: n(c.participants),
                        tracks: n(c.tracks),
                    }
                });
                let ips = config
                    .media
                    .announced_ips
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect();
                let cluster = RedisCluster::start(
                    &config.node_id,
                    settings,
                    ips,
                    load,
                    Duration::from_secs(10),
                )
                .await?;
                let router = RedisRouter::start(
                    &config.node_id,
                    cluster.store(),
                    &settings.redis_url,
                    &settings.prefix,
                    settings.node_ttl / 3,
                );
                (cluster, Arc::new(router))
            }
        };
        let rooms = Rooms::new(
            registry,
            Arc::clone(&media),
            Arc::clone(&cluster),
            config.limits.max_rooms,
            config.limits.max_participants_per_room,
            drain_rx.clone(),
        );
        let state = Arc::new(AppState {
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            quotas: quota::Quotas::new(
                config.limits.max_connections_per_identity,
                config.limits.max_rooms_per_identity,
            ),
            config: Arc::new(config),
            verifier,
            rooms,
            draining: drain_rx,
            cluster,
            router,
            media_ports: Arc::clone(media.ports()),
        });
        Ok((Server { state, media }, drain_tx))
    }
}

/// Runs the server on `listener` until `shutdown` resolves, then drains:
/// every session gets `reconnect` (`draining`), sessions get up to the
/// configured grace period to leave, and the media engine is closed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let max_connections = config.limits.max_connections;
    let grace = config.shutdown_grace;
    let (server, drain_tx) = Server::new(config).await?;
    let state = Arc::clone(&server.state);
    // TLS: the certificate store, and its reloader (SIGHUP, file changes).
    let (tls, tls_watch) = match &state.config.tls {
        Some(paths) => {
            let store = net::tls::CertStore::new(paths.clone()).map_err(RunError::Tls)?;
            let acceptor = store.acceptor().map_err(RunError::Tls)?;
            tracing::info!(cert = %paths.cert.display(), "serving HTTPS and WSS");
            (Some(acceptor), Some(store.watch()))
        }
        None => (None, None),
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, node = %state.config.node_id, "listening");
    }
    // Rooms whose lease went elsewhere are closed here; their members reconnect.
    let evictions = {
        let state = Arc::clone(&state);
        let mut lost = state.cluster.lost_rooms();
        tokio::spawn(async move {
            loop {
                match lost.recv().await {
                    Ok(room) => state.rooms.evict(&room).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::error!(missed = n, "lost-room notices dropped");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    };
    // Sessions that other nodes forward here, for rooms this node holds.
    let remote = state
        .router
        .take_incoming()
        .map(|incoming| tokio::spawn(session::serve_routed(Arc::clone(&state), incoming)));
    // Admin requests other nodes send for rooms this node holds.
    let admin_calls = state
        .router
        .take_calls()
        .map(|calls| tokio::spawn(admin::serve_calls(Arc::clone(&state), calls)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = &state.config.limits;
    let listener_limits = listener::Limits {
        header_timeout: limits.http_header_timeout,
        max_pending: limits.max_pending_connections,
        max_pending_per_ip: limits.max_pending_connections_per_ip,
    };
    // `GET /metrics` on an address of its own, when configured; it stops
    // with the server.
    let metrics = match state.config.metrics_addr {
        None => None,
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Metrics { addr, source })?;
            tracing::info!(%addr, "serving /metrics");
            Some(tokio::spawn(listener::serve(
                l,
                http::metrics_routes(Arc::clone(&state)),
                listener_limits,
                // Plain HTTP: METRICS_ADDR is for a private interface.
                None,
                std::future::pending::<()>(),
            )))
        }
    };
    let http = tokio::spawn(listener::serve(
        listener,
        // The admin routes answer everything under /admin/v1/ themselves.
        admin::routes(Arc::clone(&state)).or(http::routes(Arc::clone(&state))),
        listener_limits,
        tls,
        async move {
            let _ = stop_rx.await;
        },
    ));

    shutdown.await;
    tracing::info!("shutting down: draining sessions");
    let _ = drain_tx.send(true);
    state.cluster.set_draining();
    let _ = stop_tx.send(());
    // Every session holds one connection permit until its socket is gone:
    // taking them all back completes when the last session ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(grace, state.connections.acquire_many(all)).await;
    if !matches!(drained, Ok(Ok(_))) {
        let left = max_connections.saturating_sub(state.connections.available_permits());
        tracing::warn!(sessions = left, "grace period over; closing anyway");
    }
    http.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(w) = tls_watch {
        w.abort();
    }
    evictions.abort();
    if let Some(r) = remote {
        r.abort();
    }
    if let Some(c) = admin_calls {
        c.abort();
    }
    state.router.shutdown();
    state.cluster.shutdown().await;
    server.media.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}
