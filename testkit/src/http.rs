//! A plain HTTP/1.1 GET over TCP, enough for the server's small JSON
//! routes (`/health`, `/dev/token`) without an HTTP client dependency.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `path` from `addr` (`host:port`) with `Connection: close`; returns
/// the status (0 if the status line is not one) and what follows the
/// headers, as it came (a chunked body keeps its chunk lines). Connecting
/// and reading each take at most `wait`.
pub async fn get(addr: &str, path: &str, wait: Duration) -> Result<(u16, String)> {
    let mut s = tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connect {addr} timed out"))?
        .with_context(|| format!("connect {addr}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.context("write request")?;
    let mut buf = Vec::new();
    tokio::time::timeout(wait, s.read_to_end(&mut buf))
        .await
        .map_err(|_| anyhow!("GET {path} timed out"))?
        .context("read response")?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
