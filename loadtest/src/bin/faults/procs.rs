//! The cluster under test: a real `redis-server` and three nodes of the real
//! `rheo-sfu` binary, each on a fixed loopback port for the whole run (a
//! node killed and started again keeps its slot's port and takes a fresh
//! `NODE_ID`, as a restarted container would with a generated id). Every
//! process is stopped by its pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The nodes' shared JWT secret.
pub const SECRET: &str = "faults-bench-secret-0123456789abcdef";

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .and_then(|s| s.local_addr())
        .is_ok_and(|l| l.port() != port)
}

/// Sends `sig` to `pid` (a process this run started).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid of a child this process spawned and still
    // holds (not yet reaped), so the pid cannot have been reused.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Waits up to `limit` for `child` to exit; kills it after that.
fn reap(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
}

/// `redis-server` on 127.0.0.1, without persistence.
pub struct Redis {
    /// Its port (kept across restarts).
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts it on `port`.
    pub fn start(port: u16) -> Result<Redis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server (Debian package redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listens(port) {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis {
            port,
            child: Some(child),
        })
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it with `sig` (SIGTERM: a clean shutdown; SIGKILL: a crash)
    /// and waits for it to exit. It comes back empty either way: there is
    /// no persistence.
    pub fn stop(&mut self, sig: i32) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), sig);
            reap(&mut c, Duration::from_secs(5));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL);
    }
}

/// One node slot: a port, and the process running there now.
pub struct Node {
    /// Slot index.
    pub slot: usize,
    /// HTTP/WebSocket port.
    pub port: u16,
    /// `NODE_ID` of the current process.
    pub id: String,
    starts: u32,
    child: Option<Child>,
    bin: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
}

impl Node {
    /// A slot; nothing runs yet.
    pub fn new(
        slot: usize,
        bin: &Path,
        ip: &str,
        redis_url: &str,
        settings: &[(String, String)],
        logs: &Path,
    ) -> Result<Node> {
        let port = free_port()?;
        let mut env: Vec<(String, String)> = [
            ("CLUSTER_MODE", "true"),
            ("REDIS_URL", redis_url),
            ("HOST", "127.0.0.1"),
            ("JWT_SECRET", SECRET),
            ("ANNOUNCED_IPS", ip),
            ("RELAY_PORT", "0"),
            ("SHUTDOWN_GRACE_SECS", "10"),
            ("MEDIA_STATS_SECS", "0"),
            (
                "RUST_LOG",
                "info,webrtc=error,webrtc_ice=error,rheomesh=warn",
            ),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        env.push(("PORT".into(), port.to_string()));
        env.extend(settings.iter().cloned());
        Ok(Node {
            slot,
            port,
            id: String::new(),
            starts: 0,
            child: None,
            bin: bin.to_owned(),
            env,
            logs: logs.to_owned(),
        })
    }

    /// The node's WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether a process runs in this slot.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts a process with a fresh id and waits until it listens.
    pub async fn start(&mut self) -> Result<()> {
        self.starts += 1;
        self.id = format!("n{}-{}", self.slot, self.starts);
        let log = self.logs.join(format!("{}.log", self.id));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NODE_ID", &self.id)
            .stdout(out)
            .stderr(err);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {:?}", self.bin))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listens(self.port) {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "node {} exited at start ({status}); {}",
                    self.id,
                    log.display()
                );
            }
            if Instant::now() > deadline {
                signal(child.id(), libc::SIGKILL);
                let _ = child.wait();
                bail!("node {} did not listen; {}", self.id, log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// Sends `sig` and waits (up to `limit`) for the process to exit.
    pub fn stop(&mut self, sig: i32, limit: Duration) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), sig);
            reap(&mut c, limit);
        }
    }

    /// `GET /health` as JSON.
    pub async fn health(&self) -> Result<Value> {
        self.get("/health").await
    }

    /// `GET /health?room=…`'s `room` object.
    pub async fn room(&self, room: &str) -> Result<Value> {
        Ok(self.get(&format!("/health?room={room}")).await?["room"].clone())
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let (status, body) =
            sfu_testkit::http::get(&self.addr(), path, Duration::from_secs(3)).await?;
        if status != 200 {
            bail!("{path}: {status} {body}");
        }
        Ok(serde_json::from_str(body.trim())?)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM, Duration::from_secs(12));
    }
}
