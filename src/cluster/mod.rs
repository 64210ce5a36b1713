//! How this node coordinates with others: room ownership, the node
//! registry, and (in cluster mode) Redis.
//!
//! [`Cluster`] is what the rest of the server sees. [`LocalCluster`] is the
//! single-node answer ("every room is mine", nothing to coordinate);
//! [`redis::RedisCluster`] holds room leases and a registry entry in Redis.
//! `main` (through [`crate::run`]) picks one from the configuration, with
//! the matching signaling router ([`crate::routing`]); nothing else knows
//! which. This module never touches rheomesh, and the session never talks
//! to Redis.

pub mod redis;
pub mod store;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::broadcast;

/// Locks a std mutex of this module. Every section under these locks is
/// short and leaves its data consistent, so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `tick` every `period` for as long as `owner` is alive (the task
/// holds it weakly), skipping ticks it could not keep up with.
pub(crate) fn every<T, F, Fut>(
    period: std::time::Duration,
    owner: &Arc<T>,
    tick: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let owner = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(owner) = owner.upgrade() else { break };
            tick(owner).await;
        }
    })
}

/// Where a room lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPlacement {
    /// This node holds the room (its lease, in cluster mode).
    Here,
    /// Another node holds it.
    Elsewhere {
        /// The owner's id.
        node_id: String,
        /// The owner's advertised WebSocket URL, when it is registered.
        url: Option<String>,
    },
}

/// Why the cluster could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// The coordination store (Redis) cannot be reached.
    #[error("cluster coordination is unavailable ({0}); rooms this node does not hold cannot be opened now")]
    Unavailable(String),
    /// The room's lease is held by a node that left the registry (it
    /// stopped or died); the room can be opened elsewhere once the lease
    /// expires.
    #[error(
        "the room's node {node} is gone; the room can be opened again within {lease_secs} s, retry"
    )]
    OwnerGone {
        /// The dead owner.
        node: String,
        /// Upper bound of the wait.
        lease_secs: u64,
    },
}

/// Load of this node, reported to the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Rooms held.
    pub rooms: u32,
    /// Room memberships.
    pub participants: u32,
    /// Published tracks with media.
    pub tracks: u32,
}

/// Cluster state for `/health`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// `single` or `redis`.
    pub mode: &'static str,
    /// In cluster mode: whether Redis answered the last call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
    /// In cluster mode: live nodes in the registry (this one included),
    /// as of the last heartbeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// In cluster mode: rooms whose lease this node holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leases: Option<usize>,
    /// In cluster mode: the URL this node advertises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,
}

/// What the server needs from the cluster layer.
///
/// Methods return boxed futures so that the server can hold an
/// `Arc<dyn Cluster>` without knowing which backend it is.
pub trait Cluster: Send + Sync + 'static {
    /// Places a room that this node does not have open yet: claims it for
    /// this node, or names the node that holds it. Also called for a room
    /// this node holds (then it confirms and extends the lease).
    fn claim_room<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<RoomPlacement, ClusterError>>;

    /// The room closed on this node: give up its lease.
    fn release_room<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ()>;

    /// Who holds `room` now, as far as the cluster knows.
    fn room_owner<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>>;

    /// Rooms this node must stop serving (its lease went to another node).
    fn lost_rooms(&self) -> broadcast::Receiver<String>;

    /// State for `/health`.
    fn status(&self) -> BoxFuture<'_, ClusterStatus>;

    /// Leaves the cluster: releases leases, removes the registry entry.
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// The node began draining: other nodes stop placing rooms here.
    fn set_draining(&self) {}

    /// Ids of the live nodes of the cluster, this one included; empty on
    /// a single node.
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A single node: every room is placed here, nothing is shared.
#[derive(Debug)]
pub struct LocalCluster {
    // Nothing is ever lost on a single node; the sender keeps receivers open.
    lost: broadcast::Sender<String>,
}

impl LocalCluster {
    /// The single-node cluster.
    pub fn new() -> Arc<LocalCluster> {
        let (lost, _) = broadcast::channel(1);
        Arc::new(LocalCluster { lost })
    }
}

impl Cluster for LocalCluster {
    fn claim_room<'a>(
        &'a self,
        _room: &'a str,
    ) -> BoxFuture<'a, Result<RoomPlacement, ClusterError>> {
        Box::pin(async { Ok(RoomPlacement::Here) })
    }

    fn release_room<'a>(&'a self, _room: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn room_owner<'a>(
        &'a self,
        _room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ClusterError>> {
        // Only the rooms open here are known; the caller checks those.
        Box::pin(async { Ok(None) })
    }

    fn lost_rooms(&self) -> broadcast::Receiver<String> {
        self.lost.subscribe()
    }

    fn status(&self) -> BoxFuture<'_, ClusterStatus> {
        Box::pin(async {
            ClusterStatus {
                mode: "single",
                redis: None,
                nodes: None,
                leases: None,
                advertise_url: None,
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
