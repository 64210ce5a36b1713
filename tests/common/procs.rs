//! Real processes for cluster tests: `redis-server` on a free loopback port,
//! and nodes that are the real `rheo-sfu` binary, each on its own port.
//! Every process is stopped by its pid when its guard drops (also when a
//! test panics).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rheo_sfu::auth::{AuthConfig, JwtKey, Verifier};
use serde_json::Value;

use super::{http_get, test_ip, token_request, Endpoint};

/// The shared HS256 secret of every test node.
pub const CLUSTER_SECRET: &str = "cluster-test-secret-0123456789";

/// Whether something listens on 127.0.0.1:`port`. A connect to a port
/// nobody holds can be given that very port as its source and connect to
/// itself (TCP self-connect); that is not a listener.
fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .and_then(|s| s.local_addr())
        .is_ok_and(|local| local.port() != port)
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `redis-server` without persistence on 127.0.0.1:port.
pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    pub fn start() -> RedisProcess {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisProcess {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install Debian's redis-server (scripts/test.sh does)")
            });
        let r = RedisProcess {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listens(port) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "-KILL");
            let _ = c.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A node: the real server binary (in cluster mode, or single).
pub struct NodeProcess {
    pub id: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Option<Child>,
}

/// The server binary: this build's, or `SFU_BIN` to measure another build
/// with the same tests (before/after figures).
fn binary() -> PathBuf {
    std::env::var_os("SFU_BIN")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rheo-sfu")))
}

impl NodeProcess {
    /// Starts node `id` against `redis_url` and waits for `/health`.
    pub async fn start(id: &str, redis_url: &str, extra: &[(&str, &str)]) -> NodeProcess {
        let mut env = vec![("CLUSTER_MODE", "true"), ("REDIS_URL", redis_url)];
        env.extend_from_slice(extra);
        Self::launch(id, &env).await
    }

    /// Starts the binary as a single node (no cluster), with `extra` settings.
    pub async fn start_single(id: &str, extra: &[(&str, &str)]) -> NodeProcess {
        Self::launch(id, extra).await
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    async fn launch(id: &str, extra: &[(&str, &str)]) -> NodeProcess {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{id}-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("NODE_ID", id)
            .env("JWT_SECRET", CLUSTER_SECRET)
            .env("ANNOUNCED_IPS", test_ip().to_string())
            .env("RELAY_PORT", "0")
            .env("SHUTDOWN_GRACE_SECS", "2")
            .env(
                "RUST_LOG",
                "info,webrtc=error,webrtc_ice=error,rheomesh=warn",
            )
            .stdout(out)
            .stderr(err);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start rheo-sfu");
        let mut node = NodeProcess {
            id: id.to_owned(),
            addr,
            log,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = node.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "node {id} exited at start ({status}); log {}",
                        node.log.display()
                    );
                }
            }
            if listens(addr.port()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not listen; log {}",
                node.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub async fn health(&self) -> Value {
        let (status, body) = http_get(self.addr, "/health").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("health JSON")
    }

    pub async fn health_of_room(&self, room: &str) -> Value {
        let (status, body) = http_get(self.addr, &format!("/health?room={room}")).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("health JSON");
        v["room"].clone()
    }

    /// kill -9: no draining, no lease release.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "-KILL");
            let _ = c.wait();
        }
    }
}

impl Endpoint for NodeProcess {
    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
    fn user_token(&self, user: &str) -> String {
        Verifier::new(&AuthConfig {
            key: JwtKey::Secret(CLUSTER_SECRET.as_bytes().to_vec()),
            issuer: None,
            audience: None,
            leeway_secs: 0,
        })
        .expect("verifier")
        .issue_token(&token_request(user))
        .expect("token")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal(c.id(), "-KILL");
            let _ = c.wait();
        }
    }
}
