//! Shared integration-test harness: the real server in-process, signaling
//! clients, and a driver that runs real webrtc-rs peers over the protocol.
#![allow(dead_code)]

pub mod driver;
pub mod peer;
pub mod procs;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rheo_sfu::auth::{AuthConfig, TokenRequest, Verifier};
use rheo_sfu::config::{Config, JwtKey};
use signaling::client::Client;
use tokio::sync::oneshot;

/// The address every server and peer uses inside the test network namespace.
pub const TEST_IP: &str = "10.77.0.1";
pub const T: Duration = Duration::from_secs(10);

pub fn test_ip() -> IpAddr {
    TEST_IP.parse().expect("valid literal")
}

/// Media tests need 10.77.0.1 on an interface of the (namespaced) host.
pub fn require_test_network() {
    if std::net::UdpSocket::bind((test_ip(), 0)).is_err() {
        panic!(
            "{TEST_IP} is not an address of this host. Media tests run inside a network namespace \
             that scripts/test.sh creates (WebRTC would otherwise gather the host's LAN address); \
             run ./scripts/test.sh"
        );
    }
}

/// One media test at a time in a test binary. Each media test runs a server
/// and several WebRTC peers, all in one process on two cores; run side by
/// side (the default for tests in one binary) they starve each other's ICE
/// and DTLS timers, and under such starvation a subscriber occasionally gets
/// no media at all in the six-person test (seen about once in five full
/// runs, and every other run with two extra busy loops: an overload
/// behaviour to measure with the load tester, not something a functional
/// test should trip over at random).
pub async fn media_slot() -> tokio::sync::MutexGuard<'static, ()> {
    static SLOT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SLOT.lock().await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Something tests connect WebSocket clients to: the in-process server or a
/// node process.
pub trait Endpoint {
    fn ws_url(&self) -> String;
    /// A token for `user` that this endpoint accepts.
    fn user_token(&self, user: &str) -> String;
}

impl Endpoint for TestServer {
    fn ws_url(&self) -> String {
        TestServer::ws_url(self)
    }
    fn user_token(&self, user: &str) -> String {
        TestServer::user_token(self, user)
    }
}

/// The real server, running in-process on 127.0.0.1:0.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), rheo_sfu::RunError>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        init_tracing();
        let mut config = Config::new_dev();
        config.media.announced_ips = vec![test_ip()];
        config.media.relay_port = 0;
        config.shutdown_grace = Duration::from_secs(3);
        f(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(rheo_sfu::run(config.clone(), listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            config,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Signs a token with the server's key (dev secret or configured secret).
    pub fn token(&self, req: TokenRequest) -> String {
        let key = match &self.config.jwt_key {
            JwtKey::PublicKeyPem(_) => panic!("sign RS tokens in the test itself"),
            secret @ (JwtKey::Dev(_) | JwtKey::Secret(_)) => secret.clone(),
        };
        Verifier::new(&AuthConfig {
            key,
            issuer: self.config.jwt_issuer.clone(),
            audience: self.config.jwt_audience.clone(),
            leeway_secs: 0,
        })
        .expect("verifier")
        .issue_token(&req)
        .expect("token")
    }

    pub fn user_token(&self, user: &str) -> String {
        self.token(token_request(user))
    }

    /// Connects with `?token=` and waits for auth-ok.
    pub async fn connect(&self, user: &str) -> Client {
        let url = format!("{}?token={}", self.ws_url(), self.user_token(user));
        let mut c = Client::connect(&url, None).await.expect("connect");
        c.wait_type("auth-ok", T).await.expect("auth-ok");
        c
    }

    /// Plain HTTP GET on loopback: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// Triggers shutdown and waits for run() to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let r = tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("server stops within 20 s")
            .expect("server task");
        r.expect("server ran");
    }

    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn token_request(user: &str) -> TokenRequest {
    TokenRequest {
        sub: user.to_owned(),
        name: Some(format!("{user}-name")),
        rooms: None,
        can_publish: true,
        can_subscribe: true,
        admin: false,
        ttl_secs: 3600,
    }
}

/// Sends `join` and returns the reply: `joined` or an `error`.
pub async fn join(c: &mut Client, room: &str) -> serde_json::Value {
    c.send_raw(&serde_json::json!({"type": "join", "roomName": room}).to_string())
        .await
        .expect("send join");
    c.wait_for("joined or error", T, |r| {
        matches!(r.type_name(), "joined" | "error")
    })
    .await
    .expect("reply to join")
    .raw
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body) = sfu_testkit::http::get(&addr.to_string(), path, T)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:#}"));
    // Chunked bodies: good enough to take the JSON between the first { and last }.
    let body = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(a), Some(b)) if b >= a && !body.starts_with('{') => body[a..=b].to_owned(),
        _ => body,
    };
    (status, body)
}
