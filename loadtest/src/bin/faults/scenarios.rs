//! The fault scenarios: each takes a running cluster with calls in every
//! room, injects one fault, and measures from the participants' logs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use loadtest::media::now_ns;
use serde_json::{json, Value};
use sfu_testkit::proto;

use crate::client::{Ev, Participant, Role, PPS};
use crate::procs::{Node, Redis};

/// The cluster and its calls.
pub struct World {
    /// Redis.
    pub redis: Redis,
    /// The three node slots.
    pub nodes: Vec<Node>,
    /// Every participant.
    pub people: Vec<Arc<Participant>>,
    /// Room names.
    pub rooms: Vec<String>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Every subscriber receives, every participant is in its room.
fn steady_now(w: &World) -> bool {
    w.people.iter().all(|p| {
        p.current_node().is_some()
            && (p.role == Role::Publisher || p.receiving(Duration::from_millis(300)))
    })
}

/// Who is not in a steady state, for error messages.
pub fn unsteady(w: &World) -> String {
    let now = now_ns() as f64 / 1e9;
    let who: Vec<String> = w
        .people
        .iter()
        .filter(|p| {
            p.current_node().is_none()
                || (p.role == Role::Subscriber && !p.receiving(Duration::from_millis(300)))
        })
        .map(|p| p.describe())
        .collect();
    format!("at {now:.1}s: {}", who.join(" | "))
}

/// Waits up to `limit` for [`steady_now`], held for half a second.
pub async fn steady(w: &World, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut since: Option<tokio::time::Instant> = None;
    while tokio::time::Instant::now() < deadline {
        if steady_now(w) {
            let s = *since.get_or_insert_with(tokio::time::Instant::now);
            if s.elapsed() >= Duration::from_millis(500) {
                return true;
            }
        } else {
            since = None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Each room's owner as the first live node answers (`None`: no lease).
pub async fn owners(w: &World) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let Some(n) = w.nodes.iter().find(|n| n.running()) else {
        return out;
    };
    for r in &w.rooms {
        let owner = n
            .room(r)
            .await
            .ok()
            .and_then(|v| v["owner"].as_str().map(str::to_owned));
        out.insert(r.clone(), owner);
    }
    out
}

/// Per room: which live nodes have it open, and whom each names as owner.
/// Consistent when exactly one node has it open and every node names it.
pub async fn placement(w: &World) -> (bool, Value) {
    let mut ok = true;
    let mut rooms = serde_json::Map::new();
    for r in &w.rooms {
        let mut open = Vec::new();
        let mut named = BTreeSet::new();
        for n in w.nodes.iter().filter(|n| n.running()) {
            match n.room(r).await {
                Ok(v) => {
                    if v["open"] == true {
                        open.push(n.id.clone());
                    }
                    named.insert(v["owner"].as_str().unwrap_or("-").to_owned());
                }
                Err(_) => {
                    named.insert("?".into());
                }
            }
        }
        let one = open.len() == 1 && named.len() == 1 && named.contains(&open[0]);
        ok &= one;
        rooms.insert(r.clone(), json!({"open": open, "owner": named}));
    }
    (ok, Value::Object(rooms))
}

fn slot_of(w: &World, node: &str) -> Option<usize> {
    w.nodes.iter().position(|n| n.id == node)
}

/// The node holding most rooms (ties: lowest slot).
async fn busiest(w: &World) -> Option<usize> {
    let mut count = vec![0usize; w.nodes.len()];
    for o in owners(w).await.values().flatten() {
        if let Some(s) = slot_of(w, o) {
            count[s] += 1;
        }
    }
    (0..count.len())
        .filter(|&s| w.nodes[s].running() && count[s] > 0)
        .max_by_key(|&s| (count[s], std::cmp::Reverse(s)))
}

/// What one participant went through after a fault at `t0`.
fn outcome(p: &Participant, t0: u64) -> Value {
    let ev = p.events_since(t0);
    let notice = ev
        .iter()
        .find(|(_, e)| matches!(e, Ev::Reconnect(_) | Ev::Dropped(_)));
    let how = notice.map(|(_, e)| match e {
        Ev::Reconnect(r) => format!("reconnect:{r}"),
        Ev::Dropped(_) => "dropped".to_owned(),
        _ => unreachable!("filtered above"),
    });
    let rejoined = ev
        .iter()
        .find(|(t, e)| matches!(e, Ev::Joined { .. }) && notice.is_some_and(|(n, _)| t >= n));
    let back = ev
        .iter()
        .find(|(_, e)| matches!(e, Ev::FirstPacket | Ev::Resumed(_)));
    let refusals: Vec<&String> = ev
        .iter()
        .filter_map(|(_, e)| match e {
            Ev::JoinRefused(m) => Some(m),
            _ => None,
        })
        .collect();
    json!({
        "name": p.name, "room": p.room,
        "role": if p.role == Role::Publisher { "publisher" } else { "subscriber" },
        "noticeMs": notice.map(|(t, _)| ms(t - t0)),
        "how": how,
        "rejoinedMs": rejoined.map(|(t, _)| ms(t - t0)),
        "mediaBackMs": if p.role == Role::Subscriber { back.map(|(t, _)| ms(t - t0)) } else { None },
        "joinRefusals": refusals.len(),
        "lastRefusal": refusals.last(),
    })
}

/// Media is back everywhere: every subscriber receives again and nobody is
/// between sessions.
async fn recovered(w: &World, t0: u64, limit: Duration) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let all_back = w
            .people
            .iter()
            .all(|p| p.last_rx_ns.load(Ordering::Relaxed) > t0 || p.role == Role::Publisher);
        if all_back && steady_now(w) {
            return Some(ms(now_ns() - t0));
        }
    }
    None
}

/// Signal `sig` to the node holding most rooms, `rounds` times; each time
/// the slot is started again (fresh id) once everyone is back.
pub async fn node_faults(w: &mut World, sig: i32, rounds: u32) -> Result<Value> {
    let mut out = Vec::new();
    for round in 0..rounds {
        if !steady(w, Duration::from_secs(60)).await {
            bail!(
                "round {round}: the calls did not reach a steady state: {}",
                unsteady(w)
            );
        }
        let Some(victim) = busiest(w).await else {
            bail!("round {round}: no node holds a room");
        };
        let before = owners(w).await;
        let victim_id = w.nodes[victim].id.clone();
        let affected_rooms: Vec<String> = before
            .iter()
            .filter(|(_, o)| o.as_deref() == Some(victim_id.as_str()))
            .map(|(r, _)| r.clone())
            .collect();
        let through_victim: BTreeSet<String> = w
            .people
            .iter()
            .filter(|p| p.current_node().as_deref() == Some(victim_id.as_str()))
            .map(|p| p.name.clone())
            .collect();
        let t0 = now_ns();
        w.nodes[victim].stop(sig, Duration::from_secs(20));
        let exited_ms = ms(now_ns() - t0);
        let all_back = recovered(w, t0, Duration::from_secs(90)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let people: Vec<Value> = w
            .people
            .iter()
            .map(|p| {
                let mut o = outcome(p, t0);
                o["inRoomOfVictim"] = json!(affected_rooms.contains(&p.room));
                o["throughVictim"] = json!(through_victim.contains(&p.name));
                o
            })
            .collect();
        let (consistent, rooms) = placement(w).await;
        eprintln!(
            "round {round}: {} {victim_id} ({} rooms) -> all media back after {:?} ms",
            if sig == libc::SIGKILL {
                "SIGKILL"
            } else {
                "SIGTERM"
            },
            affected_rooms.len(),
            all_back
        );
        out.push(json!({
            "round": round, "victim": victim_id, "rooms": affected_rooms,
            "exitedMs": exited_ms, "allBackMs": all_back,
            "placementConsistent": consistent, "placement": rooms,
            "participants": people,
        }));
        w.nodes[victim].start().await?;
        // The new node is in everyone's registry before the next fault.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let mut all = true;
            for n in w.nodes.iter() {
                let h = n.health().await.unwrap_or_default();
                all &= h["cluster"]["nodes"] == json!(w.nodes.len());
            }
            if all || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(json!(out))
}

/// One join of `room` through `node` by a fresh client, which leaves
/// again: whether it joined (else the refusal), and whether the room was
/// open on `node` itself while it was in.
async fn probe_join(node: &Node, room: &str, user: &str) -> (bool, String, bool) {
    let tok = match crate::client_token(user, room) {
        Ok(t) => t,
        Err(e) => return (false, e.to_string(), false),
    };
    let wait = Duration::from_secs(5);
    let mut c = match proto::sign_in(&node.ws_url(), &tok, wait).await {
        Ok((c, _)) => c,
        Err(e) => return (false, format!("connect: {e:#}"), false),
    };
    let r = proto::join(&mut c, room, wait).await;
    let out = match r {
        Ok(_) => {
            let here = node.room(room).await.is_ok_and(|v| v["open"] == true);
            let _ = c
                .send(&signaling::ClientMessage::Leave {
                    room_name: room.to_owned(),
                })
                .await;
            (true, String::new(), here)
        }
        Err(e) => (false, format!("{e:#}"), false),
    };
    c.close().await;
    out
}

/// Delivery of every subscriber between two snapshots of its counters
/// (received, lost).
fn delivery(w: &World, before: &[(u64, u64)], secs: f64) -> Vec<Value> {
    w.people
        .iter()
        .zip(before)
        .filter(|(p, _)| p.role == Role::Subscriber)
        .map(|(p, (got0, lost0))| {
            json!({
                "name": p.name,
                "received": p.packets.load(Ordering::Relaxed) - got0,
                "lost": p.lost.load(Ordering::Relaxed) - lost0,
                "expected": (secs * PPS as f64).round(),
                "maxGapMs": ms(p.max_gap_ns.load(Ordering::Relaxed)),
            })
        })
        .collect()
}

/// Redis stopped (SIGTERM) for `secs`, then started again (empty).
pub async fn redis_outage(w: &mut World, secs: u64) -> Result<Value> {
    if !steady(w, Duration::from_secs(60)).await {
        bail!("the calls did not reach a steady state: {}", unsteady(w));
    }
    let before: Vec<(u64, u64)> = w
        .people
        .iter()
        .map(|p| {
            p.max_gap_ns.store(0, Ordering::Relaxed);
            (
                p.packets.load(Ordering::Relaxed),
                p.lost.load(Ordering::Relaxed),
            )
        })
        .collect();
    let t0 = now_ns();
    w.redis.stop(libc::SIGTERM);
    let mut refusals = Vec::new();
    let mut k = 0;
    while now_ns() - t0 < secs * 1_000_000_000 {
        for n in w.nodes.iter() {
            k += 1;
            let (ok, why, _) = probe_join(n, &format!("new-{k}"), &format!("prober-{k}")).await;
            refusals
                .push(json!({"atMs": ms(now_ns() - t0), "node": n.id, "joined": ok, "error": why}));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let down_secs = (now_ns() - t0) as f64 / 1e9;
    let during = delivery(w, &before, down_secs);
    let port = w.redis.port;
    w.redis = Redis::start(port)?;
    let t_up = now_ns();
    // When does each node open new rooms again?
    let mut new_rooms: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = t_up + 60_000_000_000;
    while new_rooms.len() < w.nodes.len() && now_ns() < deadline {
        for n in w.nodes.iter() {
            if new_rooms.contains_key(&n.id) {
                continue;
            }
            k += 1;
            let (ok, _, _) = probe_join(n, &format!("after-{k}"), &format!("prober-{k}")).await;
            if ok {
                new_rooms.insert(n.id.clone(), ms(now_ns() - t_up));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leases_ms = leases_back(w, t_up).await;
    let (consistent, rooms) = placement(w).await;
    let after: Vec<Value> = w.people.iter().map(|p| outcome(p, t0)).collect();
    Ok(json!({
        "downSecs": down_secs,
        "subscribersDuringOutage": during,
        "newRoomAttempts": refusals,
        "newRoomsOpenAgainMs": new_rooms,
        "leasesBackMs": leases_ms,
        "placementConsistent": consistent, "placement": rooms,
        "participants": after,
    }))
}

/// Time from `t_up` until every room has an owner again that has it open
/// and that every node names (up to 30 s).
async fn leases_back(w: &World, t_up: u64) -> Option<f64> {
    let deadline = now_ns() + 30_000_000_000;
    while now_ns() < deadline {
        if placement(w).await.0 {
            return Some(ms(now_ns() - t_up));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Redis killed and started again at once without its data, while
/// clients keep joining existing rooms through nodes that do not hold
/// them (the moment a second copy of a room could open).
pub async fn redis_empty(w: &mut World) -> Result<Value> {
    if !steady(w, Duration::from_secs(60)).await {
        bail!("the calls did not reach a steady state: {}", unsteady(w));
    }
    let owners_before = owners(w).await;
    let t0 = now_ns();
    w.redis.stop(libc::SIGKILL);
    let port = w.redis.port;
    w.redis = Redis::start(port)?;
    let t_up = now_ns();
    // Joins of existing rooms through other nodes for five seconds; after
    // each round, whether every room is back on one node named by all.
    let mut probes = Vec::new();
    let mut k = 0;
    let mut consistent_at = None;
    while now_ns() - t_up < 5_000_000_000 {
        if consistent_at.is_none() && placement(w).await.0 {
            consistent_at = Some(ms(now_ns() - t_up));
        }
        for (room, owner) in &owners_before {
            let Some(n) = w
                .nodes
                .iter()
                .find(|n| n.running() && Some(&n.id) != owner.as_ref())
            else {
                continue;
            };
            k += 1;
            let at = ms(now_ns() - t_up);
            let (ok, why, here) = probe_join(n, room, &format!("prober-{k}")).await;
            probes.push(json!({"atMs": at, "room": room, "via": n.id, "joined": ok, "openThere": here, "error": why}));
        }
    }
    let leases_ms = match consistent_at {
        Some(at) => Some(at),
        None => leases_back(w, t_up).await,
    };
    let all_back = recovered(w, t0, Duration::from_secs(30)).await;
    // Settled: check again a while later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (consistent, rooms) = placement(w).await;
    let people: Vec<Value> = w.people.iter().map(|p| outcome(p, t0)).collect();
    let moved = people
        .iter()
        .filter(|p| p["how"].as_str().is_some_and(|h| h.contains("RoomMoved")))
        .count();
    let second_copies = probes.iter().filter(|p| p["openThere"] == true).count();
    Ok(json!({
        "ownersBefore": owners_before,
        "secondCopies": second_copies,
        "probes": probes,
        "leasesConsistentMs": leases_ms,
        "allMediaMs": all_back,
        "placementConsistent": consistent, "placement": rooms,
        "roomMovedReconnects": moved,
        "participants": people,
    }))
}
