//! `GET /metrics` under a real Prometheus: the server carries a small call
//! (webrtc-rs peers), a `prometheus` process started here scrapes it every
//! second, and its HTTP API must show the state gauges, media counters that
//! grow and the negotiation histogram. `promtool check metrics` lints the
//! exposition, and every metric the Grafana dashboard (deploy/) queries must
//! exist. Runs inside the network namespace of scripts/test.sh.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::driver::{Driver, Options};
use common::procs::free_port;
use common::{http_get, media_slot, require_test_network, TestServer};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

const MEDIA_WAIT: Duration = Duration::from_secs(20);
/// Prometheus scrapes every second; this bounds every wait for a value.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(40);

/// A `prometheus` process, stopped by its pid when dropped.
struct Prometheus {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second.
    fn start(target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("sfu-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sfu\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (scripts/test.sh installs Debian's `prometheus`)");
        Prometheus {
            port,
            child,
            _dir: TempDir(dir),
        }
    }

    /// The samples of an instant query: (labels, value).
    async fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let addr = format!("127.0.0.1:{}", self.port).parse().expect("address");
        let path = format!(
            "/api/v1/query?query={}",
            utf8_percent_encode(q, NON_ALPHANUMERIC)
        );
        let (status, body) = http_get(addr, &path).await;
        if status != 200 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let value = r["value"][1].as_str()?.parse().ok()?;
                        Some((r["metric"].clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sum of a query's samples once it satisfies `ok`, or a panic
    /// that shows the last answer.
    async fn wait_for(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(q).await;
            let sum: f64 = last.iter().map(|(_, v)| v).sum();
            if !last.is_empty() && ok(sum) {
                return sum;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("Prometheus never answered `{q}` as expected; last answer: {last:?}");
    }
}

/// The body of `GET /metrics`, as it came (HTTP/1.0: never chunked).
async fn metrics_text(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8(buf).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

/// The metric names a PromQL expression reads (histogram series reduced to
/// their family name).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (expr[i..].starts_with("sfu_") || expr[i..].starts_with("process_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == '_'));
        if starts {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == '_') {
                j += 1;
            }
            let name: String = bytes[i..j].iter().collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_owned();
            out.push(family);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_call() {
    require_test_network();
    let _slot = media_slot().await;
    let server = TestServer::start().await;
    let prometheus = Prometheus::start(&server.addr.to_string());

    // A small call: one publisher, two subscribers (each PeerConnection
    // made on first use: no subscribe-prepare).
    let room = "metrics";
    let publisher = Driver::join(
        &server,
        "pub",
        room,
        Options {
            prepare: false,
            ..Options::default()
        },
    )
    .await;
    let mut subs = Vec::new();
    for i in 0..2 {
        let s = Driver::join(
            &server,
            &format!("sub{i}"),
            room,
            Options {
                publish: false,
                prepare: false,
                ..Options::default()
            },
        )
        .await;
        s.wait_new_publisher("pub", 2).await;
        s.subscribe("pub");
        subs.push(s);
    }
    for s in &subs {
        assert!(
            s.subscriber
                .wait_for_packets(&publisher.video_track, 100, MEDIA_WAIT)
                .await,
            "{} got no media: {:?} errors {:?}",
            s.id,
            s.subscriber.stats(),
            s.errors()
        );
    }

    // The state, as Prometheus scraped it.
    prometheus.wait_for("sfu_rooms", |v| v == 1.0).await;
    prometheus.wait_for("sfu_participants", |v| v == 3.0).await;
    prometheus.wait_for("sfu_publishers", |v| v == 1.0).await;
    prometheus
        .wait_for("sfu_forwarded_tracks", |v| v == 4.0)
        .await;
    prometheus
        .wait_for(
            r#"sfu_peer_connections{kind="subscribe",state="connected"}"#,
            |v| v == 2.0,
        )
        .await;
    prometheus
        .wait_for(
            r#"sfu_peer_connections{kind="publish",state="connected"}"#,
            |v| v == 1.0,
        )
        .await;
    // Media counters that grow: sampled every 5 s, scraped every second.
    let sent = r#"sfu_media_packets_total{direction="out"}"#;
    let first = prometheus.wait_for(sent, |v| v > 0.0).await;
    prometheus.wait_for(sent, |v| v > first).await;
    let received = r#"sfu_media_packets_total{direction="in"}"#;
    let first = prometheus.wait_for(received, |v| v > 0.0).await;
    prometheus.wait_for(received, |v| v > first).await;
    prometheus
        .wait_for(r#"sfu_media_bytes_total{direction="out"}"#, |v| v > 0.0)
        .await;
    // The negotiation histogram: one publish, at least two subscribes.
    prometheus
        .wait_for(r#"sfu_negotiation_seconds_count{kind="publish"}"#, |v| {
            v >= 1.0
        })
        .await;
    prometheus
        .wait_for(r#"sfu_negotiation_seconds_count{kind="subscribe"}"#, |v| {
            v >= 2.0
        })
        .await;
    prometheus
        .wait_for("sfu_subscribe_seconds_count", |v| v >= 2.0)
        .await;
    prometheus
        .wait_for(
            r#"sfu_messages_received_total{type="subscribe-request"}"#,
            |v| v >= 2.0,
        )
        .await;
    prometheus
        .wait_for("process_resident_memory_bytes", |v| v > 0.0)
        .await;

    // The exposition passes promtool's checks.
    let text = metrics_text(server.addr).await;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian's `prometheus`)");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().expect("piped stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = promtool.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every metric the dashboard queries exists.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/dashboards/rheo-sfu.json"
        ))
        .expect("dashboard file"),
    )
    .expect("dashboard JSON");
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queried.extend(metric_names(target["expr"].as_str().unwrap_or("")));
        }
    }
    assert!(queried.len() > 20, "dashboard queries: {queried:?}");
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in &queried {
        assert!(
            families.contains(&name.as_str()),
            "the dashboard queries {name}, which /metrics does not have"
        );
    }

    drop(subs);
    drop(publisher);
    server.stop().await;
}
