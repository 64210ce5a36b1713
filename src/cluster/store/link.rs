//! One cached Redis connection that is replaced when it fails or stops
//! answering, and how Redis errors map to [`StoreError`].

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, RedisResult};

use super::StoreError;

/// The shared connection: one multiplexed connection, opened on demand and
/// replaced when it breaks.
///
/// This is a small version of redis-rs's `ConnectionManager` with two
/// differences that matter here: a connection that stops answering (rather
/// than failing) is replaced too, and there are no hidden reconnect retries,
/// so a call while Redis is down fails at once instead of waiting out a
/// backoff schedule.
pub(super) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    slot: Mutex<Slot>,
    /// Held while opening a connection, so that a burst of calls after a
    /// failure opens one connection rather than one each. Waiting on it is
    /// bounded by the callers' `op_timeout`, and no command runs under it.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Slot {
    /// Counts connections opened, so that a caller drops the connection it
    /// used and not a newer one another caller opened meanwhile.
    generation: u64,
    current: Option<MultiplexedConnection>,
}

impl Link {
    pub(super) fn new(client: Client, op_timeout: Duration) -> Self {
        // The outer timeout in `RedisStore::run` is the real bound; these make
        // the library give up at the same time instead of later.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        Self {
            client,
            config,
            slot: Mutex::new(Slot::default()),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        // A panic cannot leave the slot half-updated (each critical section
        // is one assignment), so a poisoned lock is still good to use. The
        // lock is never held across an await.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        let slot = self.slot();
        slot.current.clone().map(|con| (slot.generation, con))
    }

    pub(super) async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(cached) = self.cached() {
            return Ok(cached);
        }
        let _turn = self.connecting.lock().await;
        // Whoever held the lock before us may have connected already.
        if let Some(cached) = self.cached() {
            return Ok(cached);
        }
        let con = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let mut slot = self.slot();
        slot.generation += 1;
        slot.current = Some(con.clone());
        Ok((slot.generation, con))
    }

    pub(super) fn discard(&self, generation: u64) {
        let mut slot = self.slot();
        if slot.generation == generation {
            slot.current = None;
        }
    }
}

/// Errors after which the connection cannot be trusted: I/O failures
/// (including response timeouts) and replies that could not be parsed.
pub(super) fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error() || err.is_unrecoverable_error()
}

pub(super) fn classify(op: &str, err: &RedisError) -> StoreError {
    use redis::ServerErrorKind as S;
    let transient = match err.kind() {
        ErrorKind::Io | ErrorKind::AuthenticationFailed | ErrorKind::ClusterConnectionNotFound => {
            true
        }
        // Redis is loading its data set, failing over, or read-only: all
        // pass by themselves.
        ErrorKind::Server(kind) => matches!(
            kind,
            S::BusyLoading | S::TryAgain | S::MasterDown | S::ClusterDown | S::ReadOnly
        ),
        _ => false,
    };
    if transient {
        StoreError::Unavailable(format!("{op}: {err}"))
    } else {
        StoreError::Protocol(format!("{op}: {err}"))
    }
}
