//! Cluster mode: room leases and the node registry in Redis.
//!
//! - Every third of `NODE_TTL_MS` this node writes its registry entry
//!   (address and load) with that TTL, so a node that stops disappears by
//!   itself.
//! - A room is opened here only after this node claimed its lease
//!   (`SET NX PX`); every third of `ROOM_LEASE_MS` the leases are renewed
//!   with a compare-and-extend script. A lease found in another node's hands
//!   is lost: the room is closed here and its members are told to reconnect
//!   (`room-moved`). A lease found missing (Redis restarted without its
//!   data) is claimed again, after this node's registry entry is written
//!   again (see the next point).
//! - A lease whose holder has no registry entry is void: a claim takes it
//!   at once ([`RedisStore::claim_or_take_over`]). A node that died stops
//!   heartbeating, so its rooms can be opened elsewhere `NODE_TTL_MS` after
//!   its last heartbeat instead of after the rest of its lease; the lease
//!   stays what protects a room from a node that is alive (registered) but
//!   no longer renews. This is why the registry entry must exist before a
//!   lease is (re)claimed, and why a heartbeat that finds its entry gone
//!   (Redis lost its data) re-claims this node's leases at once.
//! - Redis unreachable: new rooms are refused with a clear error, rooms
//!   already held keep being served (nobody else can claim them while Redis
//!   is down either), and everything resumes when Redis answers again. The
//!   trade-off: if only this node lost Redis (a partition) while others
//!   still reach it, another node may claim one of its rooms once the lease
//!   expires, and both serve it until this node reaches Redis again and
//!   evicts its copy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::store::{Claim, NodeInfo, RedisStore, StoreError};
use super::{every, lock, Cluster, ClusterError, ClusterStatus, Load, RoomPlacement};
use crate::config::{ClusterSettings, Placement};
use crate::metrics;

/// How long one Redis call may take before Redis counts as unreachable.
const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// The load this node reports; called from the heartbeat task.
pub type LoadFn = Arc<dyn Fn() -> Load + Send + Sync>;

/// Room leases and registry entry of this node in Redis.
pub struct RedisCluster {
    node_id: String,
    settings: ClusterSettings,
    announced_ips: Vec<String>,
    store: RedisStore,
    /// Rooms whose lease this node holds.
    owned: Mutex<HashSet<String>>,
    lost: broadcast::Sender<String>,
    redis_up: AtomicBool,
    live_nodes: Mutex<Vec<NodeInfo>>,
    draining: AtomicBool,
    /// Until when this node takes no free lease: Redis lost its data, and
    /// the nodes that serve rooms are claiming them again (see
    /// [`RedisCluster::reregister`]).
    settle_until: Mutex<Option<std::time::Instant>>,
    /// Whether a heartbeat ever succeeded (a missing entry before that is
    /// not a loss).
    registered_once: AtomicBool,
    started_at: u64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    load: LoadFn,
    // For CPU load: (process CPU seconds, wall time) at the last heartbeat.
    cpu_mark: Mutex<Option<(f64, std::time::Instant)>>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: StoreError) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

impl RedisCluster {
    /// Connects to Redis (retrying for up to `connect_for`), registers this
    /// node and starts the heartbeat and lease renewal tasks.
    pub async fn start(
        node_id: &str,
        settings: &ClusterSettings,
        announced_ips: Vec<String>,
        load: LoadFn,
        connect_for: Duration,
    ) -> Result<Arc<RedisCluster>, ClusterError> {
        let deadline = tokio::time::Instant::now() + connect_for;
        let store = loop {
            match RedisStore::connect(&settings.redis_url, &settings.prefix, OP_TIMEOUT).await {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(unavailable(e)),
                Err(e) => {
                    tracing::warn!("Redis not reachable yet: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let (lost, _) = broadcast::channel(256);
        let cluster = Arc::new(RedisCluster {
            node_id: node_id.to_owned(),
            settings: settings.clone(),
            announced_ips,
            store,
            owned: Mutex::new(HashSet::new()),
            lost,
            redis_up: AtomicBool::new(true),
            live_nodes: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            settle_until: Mutex::new(None),
            registered_once: AtomicBool::new(false),
            started_at: unix_ms(),
            tasks: Mutex::new(Vec::new()),
            load,
            cpu_mark: Mutex::new(None),
        });
        cluster.heartbeat().await;
        let hb = every(settings.node_ttl / 3, &cluster, |c| async move {
            c.heartbeat().await;
        });
        let renew = every(settings.room_lease / 3, &cluster, |c| async move {
            c.renew_leases().await;
        });
        lock(&cluster.tasks).extend([hb, renew]);
        tracing::info!(node = %node_id, url = %settings.advertise_url, "joined the cluster");
        Ok(cluster)
    }

    /// The Redis connection this node uses (shared with the signaling
    /// router of cluster mode).
    pub fn store(&self) -> RedisStore {
        self.store.clone()
    }

    /// Records whether the last Redis call succeeded (every failure is
    /// counted).
    fn mark_redis(&self, up: bool) {
        if !up {
            metrics::redis_error();
        }
        let was = self.redis_up.swap(up, Ordering::Relaxed);
        if was != up {
            if up {
                tracing::info!("Redis reachable again");
            } else {
                tracing::warn!("Redis unreachable: serving the rooms held, refusing new ones");
            }
        }
    }

    fn node_info(&self) -> NodeInfo {
        let load = (self.load)();
        NodeInfo {
            node_id: self.node_id.clone(),
            advertise_url: self.settings.advertise_url.clone(),
            announced_ips: self.announced_ips.clone(),
            rooms: load.rooms,
            participants: load.participants,
            tracks: load.tracks,
            cpu: self.cpu_share(),
            started_at: self.started_at,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            draining: self.draining.load(Ordering::Relaxed),
        }
    }

    /// Share of the machine's cores this process used since the last call.
    fn cpu_share(&self) -> f32 {
        let Some(now_cpu) = process_cpu_seconds() else {
            return 0.0;
        };
        let now = std::time::Instant::now();
        let mut mark = lock(&self.cpu_mark);
        let share = match *mark {
            Some((cpu, at)) => {
                let wall = now.duration_since(at).as_secs_f64();
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                if wall > 0.0 {
                    ((now_cpu - cpu) / wall / cores).clamp(0.0, 1.0) as f32
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        *mark = Some((now_cpu, now));
        share
    }

    async fn heartbeat(&self) {
        let Some(lost_entry) = self.reregister().await else {
            return;
        };
        if let Ok(nodes) = self.store.live_nodes().await {
            *lock(&self.live_nodes) = nodes;
        }
        // Our leases may be gone with our entry: claiming them back now,
        // not at the next renewal, keeps another node from opening a
        // second copy of our rooms in the meantime.
        if lost_entry && !lock(&self.owned).is_empty() {
            tracing::warn!("registry entry was gone (Redis lost its data?); claiming leases again");
            self.renew_leases().await;
        }
    }

    /// Writes this node's registry entry, noting whether it had been lost:
    /// `None` if Redis did not take it, `Some(true)` if the entry was gone
    /// although this node had registered before (Redis restarted without
    /// its data, or no heartbeat reached it for a whole `NODE_TTL_MS`).
    ///
    /// After such a loss every node's leases may be gone, and a room still
    /// served by its node must not be opened on another one before that
    /// node claimed it again: for a third of `NODE_TTL_MS` (the heartbeat
    /// period, in which every node notices the same loss) plus the Redis
    /// timeout, this node takes no free lease for a new room.
    async fn reregister(&self) -> Option<bool> {
        let missing = matches!(self.store.node(&self.node_id).await, Ok(None));
        if !self.register().await {
            return None;
        }
        let lost = missing && self.registered_once.swap(true, Ordering::Relaxed);
        if lost {
            self.settle();
        }
        Some(lost)
    }

    /// Starts the period in which this node takes no free lease.
    fn settle(&self) {
        let until = std::time::Instant::now() + self.settings.node_ttl / 3 + OP_TIMEOUT;
        *lock(&self.settle_until) = Some(until);
    }

    /// Whether this node may take a free lease for a new room now.
    fn may_take_free(&self) -> bool {
        lock(&self.settle_until).is_none_or(|t| std::time::Instant::now() >= t)
    }

    /// Writes this node's registry entry; false if Redis did not take it.
    async fn register(&self) -> bool {
        let info = self.node_info();
        match self.store.heartbeat(&info, self.settings.node_ttl).await {
            Ok(()) => {
                self.mark_redis(true);
                true
            }
            Err(e) => {
                tracing::debug!("heartbeat failed: {e}");
                self.mark_redis(false);
                false
            }
        }
    }

    async fn renew_leases(&self) {
        let rooms: Vec<String> = lock(&self.owned).iter().cloned().collect();
        let mut registered = false;
        for room in rooms {
            let kept = match self
                .store
                .renew_room(&room, &self.node_id, self.settings.room_lease)
                .await
            {
                Ok(true) => {
                    metrics::lease("renewed");
                    true
                }
                // Not ours any more, or gone (Redis restarted without its
                // data): claim it again; only another holder takes it away.
                // Our registry entry goes first: a lease whose holder is
                // not registered is anybody's (see the module docs).
                Ok(false) => match async {
                    if !std::mem::replace(&mut registered, true) {
                        self.reregister().await;
                    }
                    // Our own room: taken back even while settling.
                    self.store
                        .claim_or_take_over(&room, &self.node_id, self.settings.room_lease, true)
                        .await
                }
                .await
                {
                    Ok(Claim::Owned) => true,
                    // Not registered (the write above failed): next time.
                    Ok(Claim::Wait) => true,
                    Ok(Claim::OwnedBy(other)) => {
                        tracing::warn!(%room, holder = %other, "room lease lost to another node");
                        false
                    }
                    Err(e) => {
                        self.mark_redis(false);
                        tracing::debug!(%room, "lease renewal failed: {e}");
                        true
                    }
                },
                Err(e) => {
                    self.mark_redis(false);
                    tracing::debug!(%room, "lease renewal failed: {e}");
                    true
                }
            };
            if !kept && lock(&self.owned).remove(&room) {
                metrics::lease("lost");
                let _ = self.lost.send(room);
            }
        }
    }

    /// The node a new room should go to under `PLACEMENT=least-loaded`.
    fn least_loaded(&self) -> Option<NodeInfo> {
        lock(&self.live_nodes)
            .iter()
            .filter(|n| !n.draining)
            .min_by_key(|n| (n.participants, n.rooms, n.node_id != self.node_id))
            .cloned()
    }

    fn url_of(&self, node_id: &str) -> Option<String> {
        lock(&self.live_nodes)
            .iter()
            .find(|n| n.node_id == node_id)
            .map(|n| n.advertise_url.clone())
    }
}

impl Cluster for RedisCluster {
    fn claim_room<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<RoomPlacement, ClusterError>> {
        Box::pin(async move {
            if self.settings.placement == Placement::LeastLoaded
                && !lock(&self.owned).contains(room)
            {
                match self.store.room_owner(room).await {
                    Ok(Some(owner)) if owner != self.node_id => {
                        return Ok(RoomPlacement::Elsewhere {
                            url: self.url_of(&owner),
                            node_id: owner,
                        })
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if let Some(n) = self.least_loaded() {
                            if n.node_id != self.node_id {
                                return Ok(RoomPlacement::Elsewhere {
                                    node_id: n.node_id,
                                    url: Some(n.advertise_url),
                                });
                            }
                        }
                    }
                    Err(e) => {
                        self.mark_redis(false);
                        return Err(unavailable(e));
                    }
                }
            }
            let may_take_free = self.may_take_free();
            match self
                .store
                .claim_or_take_over(room, &self.node_id, self.settings.room_lease, may_take_free)
                .await
            {
                Ok(Claim::Wait) => {
                    self.mark_redis(true);
                    // Not settling, so this node was not registered: Redis
                    // lost its data and our heartbeat has not noticed yet.
                    if may_take_free {
                        self.reregister().await;
                        self.settle();
                    }
                    Err(ClusterError::Unavailable(
                        "Redis lost its data; nodes are claiming their rooms again".into(),
                    ))
                }
                Ok(Claim::Owned) => {
                    self.mark_redis(true);
                    if lock(&self.owned).insert(room.to_owned()) {
                        metrics::lease("claimed");
                    }
                    Ok(RoomPlacement::Here)
                }
                Ok(Claim::OwnedBy(node_id)) => {
                    self.mark_redis(true);
                    // The holder's entry expired just after the script
                    // ran: the lease is void now, take it. Forwarding to a
                    // node that is gone would only fail later; if the
                    // takeover does not happen either, say so now.
                    if let Ok(None) = self.store.node(&node_id).await {
                        if let Ok(Claim::Owned) = self
                            .store
                            .claim_or_take_over(
                                room,
                                &self.node_id,
                                self.settings.room_lease,
                                may_take_free,
                            )
                            .await
                        {
                            if lock(&self.owned).insert(room.to_owned()) {
                                metrics::lease("claimed");
                            }
                            return Ok(RoomPlacement::Here);
                        }
                        return Err(ClusterError::OwnerGone {
                            node: node_id,
                            lease_secs: self.settings.room_lease.as_secs().max(1),
                        });
                    }
                    Ok(RoomPlacement::Elsewhere {
                        url: self.url_of(&node_id),
                        node_id,
                    })
                }
                Err(e) => {
                    self.mark_redis(false);
                    Err(unavailable(e))
                }
            }
        })
    }

    fn release_room<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if lock(&self.owned).remove(room) {
                if let Err(e) = self.store.release_room(room, &self.node_id).await {
                    // The lease expires by itself.
                    tracing::debug!(%room, "lease release failed: {e}");
                }
            }
        })
    }

    fn room_owner<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        Box::pin(async move { self.store.room_owner(room).await.map_err(unavailable) })
    }

    fn lost_rooms(&self) -> broadcast::Receiver<String> {
        self.lost.subscribe()
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        Box::pin(async move {
            let nodes = self.store.live_nodes().await.map_err(unavailable)?;
            Ok(nodes.into_iter().map(|n| n.node_id).collect())
        })
    }

    fn status(&self) -> BoxFuture<'_, ClusterStatus> {
        Box::pin(async move {
            ClusterStatus {
                mode: "redis",
                redis: Some(if self.redis_up.load(Ordering::Relaxed) {
                    "up"
                } else {
                    "down"
                }),
                nodes: Some(lock(&self.live_nodes).len()),
                leases: Some(lock(&self.owned).len()),
                advertise_url: Some(self.settings.advertise_url.clone()),
            }
        })
    }

    fn set_draining(&self) {
        // The next heartbeat (within a third of NODE_TTL_MS) carries it.
        self.draining.store(true, Ordering::Relaxed);
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for t in lock(&self.tasks).drain(..) {
                t.abort();
            }
            let rooms: Vec<String> = lock(&self.owned).drain().collect();
            for room in rooms {
                let _ = self.store.release_room(&room, &self.node_id).await;
            }
            let _ = self.store.remove_node(&self.node_id).await;
        })
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// CPU seconds (user + system) this process used, from /proc (Linux only).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux the server runs on.
    Some((utime + stime) / 100.0)
}
