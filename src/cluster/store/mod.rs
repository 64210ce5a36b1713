//! The Redis side of cluster mode: room leases, the node registry and one
//! pub/sub channel per node (names and rules in the cluster design, issue 4).
//!
//! The commands are simple; what this module is really about is how it behaves
//! when Redis misbehaves:
//!
//! - Every [`RedisStore`] method finishes within `op_timeout`, connecting
//!   included. A stopped, hung or unreachable Redis turns into
//!   [`StoreError::Unavailable`], never into a task that waits forever, because
//!   the ownership rule ("serve a room only while holding its lease") needs a
//!   prompt answer to act on.
//! - The store heals itself. A connection that failed or stopped answering is
//!   thrown away and the next call opens a fresh one, so the caller keeps the
//!   same `RedisStore` across Redis restarts and simply retries on its own
//!   schedule (the lease and heartbeat timers).
//! - [`subscribe_node_channel`] runs its own task that re-subscribes with a
//!   bounded backoff and reports up/down on a `watch`, so the caller can tell
//!   when forwarded messages may have been lost (Redis pub/sub delivers at
//!   most once and keeps nothing for a subscriber that is away).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Client, RedisResult, Script};
use serde::{Deserialize, Serialize};

mod link;
mod scripts;
mod subscribe;

use link::{breaks_connection, classify, Link};
use scripts::{CLAIM_LUA, PRUNE_LUA, RELEASE_LUA, RENEW_LUA, TAKE_OVER_LUA};
pub use subscribe::subscribe_node_channel;

/// A sensible `op_timeout` for [`RedisStore::connect`]: Redis answers on a LAN
/// in well under a millisecond, so a second only runs out when something is
/// wrong, and it is still short against the default lease (10 s) and node TTL
/// (3 s, a heartbeat every second), which leaves room for the next renewal.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the subscription task waits for a connection plus SUBSCRIBE
/// confirmation, and for the answer to each health-check PING.
const SUB_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the subscription task pings Redis. A Redis process that dies
/// closes the socket and is noticed at once; the ping is for the cases where
/// nothing closes it (host gone, network cut, Redis frozen).
const SUB_PING_EVERY: Duration = Duration::from_secs(2);
/// Reconnect backoff of the subscription task: doubles from the first to the
/// last value and stays there, so a Redis that comes back is noticed within
/// about two seconds.
const SUB_BACKOFF_MIN: Duration = Duration::from_millis(50);
const SUB_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One entry of the node registry, stored as JSON at `P:node:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's id (`NODE_ID`).
    pub node_id: String,
    /// The ws(s) URL clients can reach this node at (`ADVERTISE_URL`).
    pub advertise_url: String,
    /// The IPs this node puts in its ICE candidates.
    pub announced_ips: Vec<String>,
    /// Rooms this node serves.
    pub rooms: u32,
    /// Participants connected to this node.
    pub participants: u32,
    /// Tracks this node forwards.
    pub tracks: u32,
    /// Process CPU over the last heartbeat period, divided by the core count
    /// (0..1).
    pub cpu: f32,
    /// When the node started, unix milliseconds.
    pub started_at: u64,
    /// The server version the node runs.
    pub version: String,
    /// True once the node takes no new rooms (shutting down).
    pub draining: bool,
}

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or did not answer in time. Transient: the
    /// same call may succeed later on the same store.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with something this module does not understand (a key
    /// of the wrong type, a registry entry that is not a `NodeInfo`, ...).
    #[error("unexpected data in redis: {0}")]
    Protocol(String),
    /// The URL or a setting passed to [`RedisStore::connect`] cannot work;
    /// retrying will not help.
    #[error("invalid redis settings: {0}")]
    Config(String),
}

/// The outcome of [`RedisStore::claim_room`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the lease now (newly taken, or already held and extended).
    Owned,
    /// Another node holds the lease; the value is its id.
    OwnedBy(String),
    /// Nobody holds it, but this node may not take it now
    /// ([`RedisStore::claim_or_take_over`]): retry shortly.
    Wait,
}

/// Every Redis key and channel name this module uses. They are built in one
/// place, [`Key::build`], so the layout in the design note is the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// `P:node:{id}`: a node's registry entry (JSON [`NodeInfo`], with a TTL).
    Node(&'a str),
    /// `P:nodes`: the set of registered node ids.
    Nodes,
    /// `P:room:{name}`: the id of the node holding the room's lease.
    Room(&'a str),
    /// `P:chan:{id}`: the pub/sub channel of a node.
    Chan(&'a str),
}

impl Key<'_> {
    /// The full key (or channel name) under `prefix` (`CLUSTER_PREFIX`).
    pub fn build(self, prefix: &str) -> String {
        match self {
            Key::Node(id) => format!("{prefix}:node:{id}"),
            Key::Nodes => format!("{prefix}:nodes"),
            Key::Room(name) => format!("{prefix}:room:{name}"),
            Key::Chan(id) => format!("{prefix}:chan:{id}"),
        }
    }
}

/// Room leases, the node registry and publishing, on one shared Redis
/// connection. Cloning is cheap (an `Arc`), and clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    prefix: String,
    op_timeout: Duration,
    // `Script` keeps the SHA1 and issues EVALSHA, loading the script itself
    // when Redis answers NOSCRIPT (its script cache is empty after a restart).
    claim: Script,
    take_over: Script,
    renew: Script,
    release: Script,
    prune: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client is left out: its connection info can hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("op_timeout", &self.inner.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`REDIS_URL`) and loads the lease scripts. Keys and
    /// channels live under `prefix` (`CLUSTER_PREFIX`); every later call on
    /// the store finishes within `op_timeout` ([`DEFAULT_OP_TIMEOUT`] is a good
    /// value).
    ///
    /// Fails with [`StoreError::Unavailable`] if Redis does not answer within
    /// `op_timeout`, and with [`StoreError::Config`] for a URL that can never
    /// work. On `Unavailable` the caller decides whether to retry or give up;
    /// once connected, the store reconnects by itself.
    pub async fn connect(
        url: &str,
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if op_timeout.is_zero() {
            return Err(StoreError::Config("op_timeout must be above zero".into()));
        }
        // The error text of `Client::open` does not repeat the URL, which can
        // carry a password.
        let client =
            Client::open(url).map_err(|e| StoreError::Config(format!("REDIS_URL: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                link: Link::new(client, op_timeout),
                prefix: prefix.to_owned(),
                op_timeout,
                claim: Script::new(CLAIM_LUA),
                take_over: Script::new(TAKE_OVER_LUA),
                renew: Script::new(RENEW_LUA),
                release: Script::new(RELEASE_LUA),
                prune: Script::new(PRUNE_LUA),
            }),
        };
        // Loading the scripts up front saves the NOSCRIPT round trip on the
        // first claim and reports a Redis without scripting (or with an ACL
        // forbidding it) now rather than at the first join.
        let scripts = [
            &store.inner.claim,
            &store.inner.take_over,
            &store.inner.renew,
            &store.inner.release,
            &store.inner.prune,
        ];
        store
            .run("connect", move |mut con| async move {
                for script in scripts {
                    script.load_async(&mut con).await?;
                }
                Ok(())
            })
            .await?;
        Ok(store)
    }

    /// The key prefix (`CLUSTER_PREFIX`) this store works under.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Takes the lease of `room` for `node` for `lease`, or extends it if
    /// `node` holds it already. Returns who holds it afterwards.
    pub async fn claim_room(
        &self,
        room: &str,
        node: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        // A repeat (see `run`) is harmless: if the first run took the lease
        // and only its reply was lost, the second finds it ours and extends it.
        let owner: String = self
            .lease_script("claim_room", &self.inner.claim, room, node, lease)
            .await?;
        Ok(if owner == node {
            Claim::Owned
        } else {
            Claim::OwnedBy(owner)
        })
    }

    /// [`RedisStore::claim_room`], except that a lease held by a node
    /// without a registry entry (see [`RedisStore::heartbeat`]) is taken
    /// too: that node is dead, and waiting for its lease to run out would
    /// only keep the room closed. A free lease is taken only if `node` is
    /// registered and `may_take_free`; else the answer is [`Claim::Wait`].
    /// Returns who holds the lease afterwards.
    pub async fn claim_or_take_over(
        &self,
        room: &str,
        node: &str,
        lease: Duration,
        may_take_free: bool,
    ) -> Result<Claim, StoreError> {
        let key = &self.key(Key::Room(room));
        // `P:node:` + the holder's id is its registry key (`Key::Node`).
        let registry = &self.key(Key::Node(""));
        let script = &self.inner.take_over;
        let ms = millis(lease);
        // A repeat (see `run`) is harmless, as for `claim_room`.
        let owner: String = self
            .run("claim_or_take_over", move |mut con| async move {
                script
                    .key(key)
                    .arg(node)
                    .arg(ms)
                    .arg(registry)
                    .arg(if may_take_free { "1" } else { "0" })
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        Ok(if owner.is_empty() {
            Claim::Wait
        } else if owner == node {
            Claim::Owned
        } else {
            Claim::OwnedBy(owner)
        })
    }

    /// Extends `node`'s lease of `room` to `lease` from now. `Ok(false)` means
    /// the lease is not `node`'s any more (expired, or taken by another node):
    /// the room must no longer be served here.
    pub async fn renew_room(
        &self,
        room: &str,
        node: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let extended: i64 = self
            .lease_script("renew_room", &self.inner.renew, room, node, lease)
            .await?;
        Ok(extended == 1)
    }

    /// Runs a lease script on the room's key with (node, lease in ms).
    async fn lease_script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        room: &str,
        node: &str,
        lease: Duration,
    ) -> Result<T, StoreError> {
        let key = &self.key(Key::Room(room));
        let ms = millis(lease);
        self.run(op, move |mut con| async move {
            script
                .key(key)
                .arg(node)
                .arg(ms)
                .invoke_async(&mut con)
                .await
        })
        .await
    }

    /// Gives up `node`'s lease of `room`. `Ok(false)` if `node` did not hold
    /// it; the lease of another node is never touched.
    pub async fn release_room(&self, room: &str, node: &str) -> Result<bool, StoreError> {
        let key = &self.key(Key::Room(room));
        let script = &self.inner.release;
        // A repeat (see `run`) is harmless; the one oddity is that if the
        // first run released the lease and its reply was lost, the answer is
        // `false` although the lease is gone, which leads the caller to the
        // same place.
        let deleted: i64 = self
            .run("release_room", move |mut con| async move {
                script.key(key).arg(node).invoke_async(&mut con).await
            })
            .await?;
        Ok(deleted == 1)
    }

    /// The node holding `room`'s lease, if any.
    pub async fn room_owner(&self, room: &str) -> Result<Option<String>, StoreError> {
        let key = &self.key(Key::Room(room));
        self.run("room_owner", move |mut con| async move {
            redis::cmd("GET").arg(key).query_async(&mut con).await
        })
        .await
    }

    /// Writes this node's registry entry with a TTL of `ttl` and makes sure it
    /// is listed in the node set.
    pub async fn heartbeat(&self, info: &NodeInfo, ttl: Duration) -> Result<(), StoreError> {
        let json = &encode_node(info)?;
        let node_key = &self.key(Key::Node(&info.node_id));
        let nodes_key = &self.key(Key::Nodes);
        let id = info.node_id.as_str();
        let ms = millis(ttl);
        self.run("heartbeat", move |mut con| async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(node_key)
                .arg(json)
                .arg("PX")
                .arg(ms)
                .ignore()
                .cmd("SADD")
                .arg(nodes_key)
                .arg(id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// Removes a node's registry entry at once (on shutdown), instead of
    /// letting its TTL run out.
    pub async fn remove_node(&self, node_id: &str) -> Result<(), StoreError> {
        let node_key = &self.key(Key::Node(node_id));
        let nodes_key = &self.key(Key::Nodes);
        self.run("remove_node", move |mut con| async move {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(node_key)
                .ignore()
                .cmd("SREM")
                .arg(nodes_key)
                .arg(node_id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// Every node whose registry entry is alive, sorted by id. Ids whose entry
    /// expired are removed from the node set on the way. An entry that does
    /// not parse is left out with a warning rather than failing the whole
    /// list, so one bad node cannot stop placement on all the others.
    pub async fn live_nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let prefix = self.prefix();
        let nodes_key = &self.key(Key::Nodes);
        let prune = &self.inner.prune;
        let (ids, entries): (Vec<String>, Vec<Option<String>>) = self
            .run("live_nodes", move |mut con| async move {
                let mut ids: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(nodes_key)
                    .query_async(&mut con)
                    .await?;
                if ids.is_empty() {
                    return Ok((ids, Vec::new()));
                }
                ids.sort_unstable();
                let keys: Vec<String> = ids.iter().map(|id| Key::Node(id).build(prefix)).collect();
                let entries: Vec<Option<String>> =
                    redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
                let mut expired = prune.key(nodes_key);
                let mut any_expired = false;
                for ((id, key), entry) in ids.iter().zip(&keys).zip(&entries) {
                    if entry.is_none() {
                        expired.key(key).arg(id);
                        any_expired = true;
                    }
                }
                if any_expired {
                    expired.invoke_async::<i64>(&mut con).await?;
                }
                Ok((ids, entries))
            })
            .await?;
        if entries.len() != ids.len() {
            return Err(StoreError::Protocol(format!(
                "MGET returned {} values for {} keys",
                entries.len(),
                ids.len()
            )));
        }
        let mut live = Vec::with_capacity(ids.len());
        for (id, entry) in ids.iter().zip(entries) {
            let Some(json) = entry else { continue };
            match decode_node(id, &json) {
                Ok(info) => live.push(info),
                Err(e) => tracing::warn!(node = %id, error = %e, "skipping bad registry entry"),
            }
        }
        Ok(live)
    }

    /// Seconds since the Redis server started (`INFO server`): a registry
    /// younger than a node TTL may still miss live nodes (Redis restarted
    /// without its data, and they have not heartbeated since).
    pub async fn uptime_secs(&self) -> Result<u64, StoreError> {
        let info: String = self
            .run("uptime", |mut con| async move {
                redis::cmd("INFO").arg("server").query_async(&mut con).await
            })
            .await?;
        info.lines()
            .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Protocol("INFO server has no uptime_in_seconds".into()))
    }

    /// One node's registry entry, if it is alive.
    pub async fn node(&self, node_id: &str) -> Result<Option<NodeInfo>, StoreError> {
        let key = &self.key(Key::Node(node_id));
        let json: Option<String> = self
            .run("node", move |mut con| async move {
                redis::cmd("GET").arg(key).query_async(&mut con).await
            })
            .await?;
        json.map(|json| decode_node(node_id, &json)).transpose()
    }

    /// Publishes `payload` on node `node_id`'s channel (`P:chan:{node_id}`).
    ///
    /// Redis pub/sub keeps nothing for a node that is not subscribed at that
    /// moment, so a payload can be lost; and when the connection breaks
    /// after Redis ran the PUBLISH but before its reply arrived, the retry
    /// described at `run` delivers it twice. Both are rare, and both are what
    /// the sequence numbers in forwarded messages are for: receivers drop a
    /// number they have seen and end the session on a gap. Not retrying would
    /// instead lose a payload for certain after every Redis restart.
    pub async fn publish(&self, node_id: &str, payload: &[u8]) -> Result<(), StoreError> {
        let channel = &self.key(Key::Chan(node_id));
        self.run("publish", move |mut con| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut con)
                .await
                .map(drop)
        })
        .await
    }

    fn key(&self, key: Key<'_>) -> String {
        key.build(&self.inner.prefix)
    }

    /// Runs `call` on the shared connection within `op_timeout`, connecting
    /// first if there is no connection. A connection that failed or did not
    /// answer in time is dropped so the next call starts afresh.
    ///
    /// A call that failed because the connection broke (not because it timed
    /// out) is sent once more on a new connection, within the same budget.
    /// Without that, the first call after every Redis restart would fail on
    /// the connection that died with the old process. It is safe because
    /// every call here has the same effect run twice as once, except PUBLISH
    /// (see [`RedisStore::publish`]).
    async fn run<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let link = &self.inner.link;
        // The connection the call is using, to drop it if time runs out.
        let mut in_use = None;
        let attempts = async {
            let mut retries_left = 1;
            loop {
                let (generation, con) = link.get().await?;
                in_use = Some(generation);
                match call(con).await {
                    Ok(value) => return Ok(value),
                    Err(err) if breaks_connection(&err) => {
                        link.discard(generation);
                        in_use = None;
                        // After a timeout the budget is spent; a second try
                        // would only be cut short.
                        if retries_left > 0 && !err.is_timeout() {
                            retries_left -= 1;
                            continue;
                        }
                        return Err(err);
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        let outcome = tokio::time::timeout(self.inner.op_timeout, attempts).await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify(op, &err)),
            Err(_elapsed) => {
                // A connection that let a call hang may be half-open (host
                // gone without a reset): it would hang every later call too.
                if let Some(generation) = in_use {
                    link.discard(generation);
                }
                Err(StoreError::Unavailable(format!(
                    "{op}: no answer within {:?}",
                    self.inner.op_timeout
                )))
            }
        }
    }
}

/// Milliseconds for PX/PEXPIRE. Redis rejects 0, and a lease shorter than a
/// millisecond would be meaningless anyway.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn encode_node(info: &NodeInfo) -> Result<String, StoreError> {
    // serde_json writes a NaN as `null`, which would then fail to parse on
    // every reader; a broken CPU sample must not take the node off the map.
    let json = if info.cpu.is_finite() {
        serde_json::to_string(info)
    } else {
        serde_json::to_string(&NodeInfo {
            cpu: 0.0,
            ..info.clone()
        })
    };
    json.map_err(|e| StoreError::Protocol(format!("encoding NodeInfo: {e}")))
}

fn decode_node(id: &str, json: &str) -> Result<NodeInfo, StoreError> {
    let info: NodeInfo = serde_json::from_str(json)
        .map_err(|e| StoreError::Protocol(format!("registry entry of {id}: {e}")))?;
    if info.node_id != id {
        return Err(StoreError::Protocol(format!(
            "registry entry of {id} names node {}",
            info.node_id
        )));
    }
    Ok(info)
}
