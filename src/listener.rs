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
//! - With TLS, the handshake must finish within the header timeout too; a
//!   plain-HTTP request on the TLS port gets a plain `400` that says to use
//!   `https://`/`wss://` (instead of a handshake error the client cannot
//!   read), except from loopback, which is served (health probes such as
//!   the container's HEALTHCHECK).
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
    tls: Option<tokio_rustls::TlsAcceptor>,
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
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_http(stream, svc, limits, ip).await,
                Some(acceptor) => {
                    let handshake = async {
                        if !starts_with_tls(&stream).await? {
                            // Loopback is served in plain HTTP too: the
                            // container's HEALTHCHECK and local tools; it
                            // never leaves the host.
                            if ip.is_loopback() {
                                return Ok(Accepted::Plain(stream));
                            }
                            refuse_plain_http(stream).await;
                            return Ok(Accepted::Refused);
                        }
                        acceptor
                            .accept(stream)
                            .await
                            .map(|s| Accepted::Tls(Box::new(s)))
                    };
                    match tokio::time::timeout(limits.header_timeout, handshake).await {
                        Ok(Ok(Accepted::Tls(s))) => serve_http(s, svc, limits, ip).await,
                        Ok(Ok(Accepted::Plain(s))) => serve_http(s, svc, limits, ip).await,
                        Ok(Ok(Accepted::Refused)) => {
                            tracing::debug!(%ip, "plain HTTP on the TLS port refused")
                        }
                        Ok(Err(e)) => tracing::debug!(%ip, "TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%ip, "TLS handshake not done in time"),
                    }
                }
            }
            drop(guard);
        });
    }
}

/// A connection on the TLS port, after its first byte.
enum Accepted {
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
    Plain(tokio::net::TcpStream),
    Refused,
}

/// Serves HTTP/1.1 (and its upgrades) on one connection, for at most
/// [`PRE_UPGRADE_LIFETIME`] before the upgrade.
async fn serve_http<IO, S>(io: IO, svc: S, limits: Limits, ip: IpAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = http.serve_connection(TokioIo::new(io), svc).with_upgrades();
    match tokio::time::timeout(PRE_UPGRADE_LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%ip, "http connection: {e}"),
        Err(_) => tracing::debug!(%ip, "http connection closed: not upgraded in time"),
    }
}

/// Whether the client's first byte opens a TLS handshake (record type 22);
/// waits for it (the caller bounds the wait).
async fn starts_with_tls(stream: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 1 && first[0] == 0x16)
}

/// Answers a plain-HTTP request on the TLS port with a readable 400.
async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body =
        "This port serves HTTPS and WSS only: use https:// or wss:// (TLS_CERT_PATH is set).\n";
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
