//! `faults`: fault injection in a 3-node cluster of the real `rheo-sfu`
//! binary with a real `redis-server`, measured from clients that follow the
//! protocol (reconnect, rejoin, republish, resubscribe). Scenarios:
//!
//! - `kill`: SIGKILL of the node holding most rooms, `--rounds` times: when
//!   clients notice (`reconnect` or a dropped socket) and when media is back;
//! - `drain`: SIGTERM of that node: every client told to reconnect before
//!   its socket closes, none dropped, everyone back;
//! - `redis-outage`: Redis stopped for `--outage-secs`, then started again:
//!   media of existing rooms during the outage, what new rooms get, when
//!   everything works again;
//! - `redis-empty`: Redis killed and started again at once without its data
//!   while clients join existing rooms through other nodes: leases back,
//!   every room open on one node that every node names.
//!
//! Run it inside `scripts/in-testnet.sh` (bench/faults.sh does): media uses
//! `--ip` only. Writes one JSON file with the raw outcomes and a summary.

mod client;
mod procs;
mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use sfu_testkit::rtc::Rtc;
use tokio::sync::watch;

use client::{Net, Participant, Role};
use procs::{Node, Redis, SECRET};
use scenarios::World;

#[derive(Debug, Parser)]
#[command(
    name = "faults",
    about = "Fault injection in a 3-node rheo-sfu cluster"
)]
struct Args {
    /// The server binary.
    #[arg(long, default_value = "target/release/rheo-sfu")]
    sfu_bin: PathBuf,
    /// The one address media may use.
    #[arg(long, default_value = "10.77.0.1")]
    ip: String,
    /// Scenarios, comma-separated: kill, drain, redis-outage, redis-empty.
    #[arg(long, default_value = "kill,drain,redis-outage,redis-empty")]
    scenarios: String,
    /// Kills (and drains: a third of it, at least 3).
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Rooms, each with one publisher and `--subscribers` subscribers.
    #[arg(long, default_value_t = 3)]
    rooms: usize,
    /// Subscribers per room.
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// Seconds Redis stays down in `redis-outage`.
    #[arg(long, default_value_t = 30)]
    outage_secs: u64,
    /// Extra node settings, NAME=VALUE (e.g. ROOM_LEASE_MS=3000); none:
    /// the binary's defaults.
    #[arg(long = "set")]
    settings: Vec<String>,
    /// Name of this configuration in the results.
    #[arg(long, default_value = "default")]
    label: String,
    /// Output JSON file.
    #[arg(long)]
    out: PathBuf,
}

/// A token for a client of `room` on the test cluster.
pub fn client_token(user: &str, room: &str) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "sub": user, "name": user, "rooms": [room],
        "canPublish": true, "canSubscribe": true,
        "iat": now, "exp": now + 6 * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

/// p50/p95/max of `xs` (nearest rank).
fn pct(mut xs: Vec<f64>) -> Value {
    if xs.is_empty() {
        return Value::Null;
    }
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
    json!({"n": xs.len(), "p50": at(0.5), "p95": at(0.95), "max": xs[xs.len() - 1]})
}

/// The figures of a node-fault run: over every participant that was hit
/// (in a room of the victim, or connected through it).
fn summarize_rounds(rounds: &Value) -> Value {
    let mut notice = Vec::new();
    let mut back = Vec::new();
    let mut all_back = Vec::new();
    let (mut hit, mut dropped, mut told, mut never_back, mut unaffected_hit) = (0, 0, 0, 0, 0);
    let mut inconsistent = 0;
    for r in rounds.as_array().into_iter().flatten() {
        match r["allBackMs"].as_f64() {
            Some(v) => all_back.push(v),
            None => never_back += 1,
        }
        if r["placementConsistent"] != true {
            inconsistent += 1;
        }
        for p in r["participants"].as_array().into_iter().flatten() {
            let affected = p["inRoomOfVictim"] == true || p["throughVictim"] == true;
            if !affected {
                if p["noticeMs"].is_number() {
                    unaffected_hit += 1;
                }
                continue;
            }
            hit += 1;
            if let Some(n) = p["noticeMs"].as_f64() {
                notice.push(n);
            }
            match p["how"].as_str() {
                Some("dropped") => dropped += 1,
                Some(_) => told += 1,
                None => {}
            }
            if p["role"] == "subscriber" && p["inRoomOfVictim"] == true {
                if let Some(b) = p["mediaBackMs"].as_f64() {
                    back.push(b);
                }
            }
        }
    }
    json!({
        "rounds": rounds.as_array().map_or(0, Vec::len),
        "participantsHit": hit,
        "toldToReconnect": told,
        "droppedWithoutReconnect": dropped,
        "otherParticipantsInterrupted": unaffected_hit,
        "roundsNotRecovered": never_back,
        "roundsWithRoomOnTwoNodes": inconsistent,
        "noticeMs": pct(notice),
        "mediaBackMs": pct(back),
        "allBackMs": pct(all_back),
    })
}

async fn build_world(args: &Args, logs: &std::path::Path) -> Result<World> {
    let redis = Redis::start(procs::free_port()?)?;
    let settings: Vec<(String, String)> = args
        .settings
        .iter()
        .filter_map(|s| s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let mut nodes = Vec::new();
    for slot in 0..3 {
        let mut n = Node::new(slot, &args.sfu_bin, &args.ip, &redis.url(), &settings, logs)?;
        n.start().await?;
        nodes.push(n);
    }
    let mut people = Vec::new();
    let mut rooms = Vec::new();
    for r in 0..args.rooms {
        let room = format!("room-{r}");
        // One member per node: whichever node dies, someone was on it.
        people.push(Participant::new(
            format!("pub-{r}"),
            room.clone(),
            Role::Publisher,
            r,
        ));
        for s in 0..args.subscribers {
            people.push(Participant::new(
                format!("sub-{r}-{s}"),
                room.clone(),
                Role::Subscriber,
                r + s + 1,
            ));
        }
        rooms.push(room);
    }
    Ok(World {
        redis,
        nodes,
        people,
        rooms,
    })
}

async fn run(args: Args) -> Result<Value> {
    let logs = args.out.with_extension("logs");
    std::fs::create_dir_all(&logs)?;
    let mut w = build_world(&args, &logs).await?;
    let net = Net {
        urls: Arc::new(w.nodes.iter().map(Node::ws_url).collect()),
        secret: SECRET.to_owned(),
        rtc: Arc::new(Rtc::new(args.ip.parse().context("--ip")?)?),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for p in &w.people {
        // The publisher first, so subscribers find it on joining.
        tasks.push(tokio::spawn(client::run(
            Arc::clone(p),
            net.clone(),
            stop_rx.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut results = serde_json::Map::new();
    for sc in args.scenarios.split(',').map(str::trim) {
        eprintln!("[{}] scenario {sc}", args.label);
        let r = match sc {
            "kill" => scenarios::node_faults(&mut w, libc::SIGKILL, args.rounds)
                .await
                .map(|rounds| json!({"summary": summarize_rounds(&rounds), "rounds": rounds})),
            "drain" => scenarios::node_faults(&mut w, libc::SIGTERM, (args.rounds / 3).max(3))
                .await
                .map(|rounds| json!({"summary": summarize_rounds(&rounds), "rounds": rounds})),
            "redis-outage" => scenarios::redis_outage(&mut w, args.outage_secs).await,
            "redis-empty" => scenarios::redis_empty(&mut w).await,
            other => anyhow::bail!("unknown scenario {other}"),
        };
        let v = r.unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
        if let Some(s) = v.get("summary") {
            eprintln!("[{}] {sc}: {s}", args.label);
        }
        results.insert(sc.to_owned(), v);
        // The next scenario starts from calls that run everywhere.
        scenarios::steady(&w, Duration::from_secs(60)).await;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(json!({
        "label": args.label,
        "settings": args.settings,
        "rooms": args.rooms,
        "subscribersPerRoom": args.subscribers,
        "scenarios": results,
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    loadtest::init_logging();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faults: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let out = args.out.clone();
    match rt.block_on(run(args)) {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            if let Err(e) = std::fs::write(&out, text) {
                eprintln!("faults: writing {}: {e}", out.display());
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faults: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
