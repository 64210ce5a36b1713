//! The accept loop in front of warp: limits that hold before a client has
//! a WebSocket, so connections that never finish a request cannot pile up.
//!
//! - A request head must arrive within `HTTP_HEADER_TIMEOUT_SECS` (hyper's
//!   header-read timeout), which also closes connections that stay silent
//!   after connecting or between requests.
//! - A connection that has not upgraded within [`PRE_UPGRADE_LIFETIME`] is
//!   closed, whatever it does (slow bodies, endless keep-alive).
//! - Not-yet-upgraded connections are capped in total and per client IP;
//!   beyond the cap a new connection is closed at once.
//! - Out of file descriptors, accepting pauses briefly instead of spinning.
//!
//! Upgraded connections leave these counts: they hold a connection permit
//! (`MAX_CONNECTIONS`) and the session's own timeouts apply.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use warp::{Filter, Reply};

/// How long a connection may live before its upgrade.
pub const PRE_UPGRADE_LIFETIME: Duration = Duration::from_secs(60);
/// Pause after an accept error such as "too many open files".
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request head.
    pub header_timeout: Duration,
    /// Not-yet-upgraded connections in total.
    pub max_pending: usize,
    /// Not-yet-upgraded connections per client IP.
    pub max_pending_per_ip: usize,
}

/// Counts of not-yet-upgraded connections.
#[derive(Default)]
struct Pending {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped.
struct PendingGuard {
    pending: Arc<Pending>,
    ip: IpAddr,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Critical sections are a map update and cannot panic midway.
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<PendingGuard> {
        let mut map = self.lock();
        let total: usize = map.values().sum();
        let n = map.entry(ip).or_insert(0);
        if *n >= limits.max_pending_per_ip || total >= limits.max_pending {
            if *n == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(PendingGuard {
            pending: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut map = self.pending.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `filter` on `listener` until `stop` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    F: Filter<Error = Infallible>,
{
    let pending = Arc::new(Pending::default());
    let mut stop = std::pin::pin!(stop);
    let mut refused_logged = std::time::Instant::now() - Duration::from_secs(60);
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE/ENFILE and friends: let some connections go first.
                tracing::warn!("accept error: {e}; pausing accepts briefly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        let Some(guard) = pending.admit(ip, &limits) else {
            crate::metrics::connection_refused("pending");
            refused += 1;
            // One line per 10 s at most: a flood must not flood the log.
            if refused_logged.elapsed() >= Duration::from_secs(10) {
                tracing::warn!(
                    %ip,
                    refused,
                    "too many connections waiting for their upgrade; closing new ones"
                );
                refused_logged = std::time::Instant::now();
                refused = 0;
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(warp::service(filter.clone()));
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            match tokio::time::timeout(PRE_UPGRADE_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%ip, "http connection: {e}"),
                Err(_) => tracing::debug!(%ip, "http connection closed: not upgraded in time"),
            }
            drop(guard);
        });
    }
}
