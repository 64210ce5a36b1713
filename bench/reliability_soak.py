#!/usr/bin/env python3
"""Writes docs/reliability/soak.md (the churn-soak part of the reliability
report) from one bench/soak.sh run.

usage: bench/reliability_soak.py RESULTS_DIR OUT.md

RESULTS_DIR is a bench/results/soak-<stamp>/ folder: summary.json (the
small summary), soak.png and recovery.png (copied next to OUT.md, under
soak/), commit.txt. series.json (per second) is not read: the figures come
from the summary only.
"""
import json
import os
import platform
import shutil
import sys


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def num(v, fmt="{:g}"):
    return "–" if v is None else fmt.format(v)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    s = json.load(open(os.path.join(src, "summary.json")))
    p = s["params"]
    out_dir = os.path.dirname(out) or "."
    fig_dir = os.path.join(out_dir, "soak")
    os.makedirs(fig_dir, exist_ok=True)
    figs = []
    for png in ("soak.png", "recovery.png"):
        path = os.path.join(src, png)
        if os.path.exists(path):
            shutil.copy(path, os.path.join(fig_dir, png))
            figs.append(png)
    # The summary goes next to the figures: it is small, and the figures
    # are meaningless without it.
    shutil.copy(os.path.join(src, "summary.json"), os.path.join(fig_dir, "summary.json"))
    try:
        commit = open(os.path.join(src, "commit.txt")).read().strip()
    except OSError:
        commit = "unknown"
    cores = os.cpu_count()
    minutes = s["load_secs"] / 60
    st = s["stable"]
    c = s["churn"]
    lines = []
    w = lines.append
    w("# Churn soak")
    w("")
    w("<!-- Written by bench/reliability_soak.py from bench/results/%s; do not edit. -->"
      % os.path.basename(os.path.normpath(src)))
    w("")
    w("Reproduce (release build, inside a fresh network namespace):")
    w("")
    w("```")
    w("bench/soak.sh %d        # seconds of load; default 1800" % round(p["duration_s"]))
    w("scripts/in-testnet.sh cargo test --test soak -- --ignored  # the 2-minute version (ignored in CI until the leak below is fixed)")
    w("```")
    w("")
    w("**Verdict: %s.** Measured on this %s-core machine (%s) with the load "
      "tester sharing it with the server (and, for this run, with other "
      "builds and tests of the project): delivery and CPU figures are "
      "pessimistic. Commit %s." % ("PASS" if s["pass"] else "FAIL", cores, cpu_model(), commit))
    w("")
    if s["failures"]:
        w("Criteria not met:")
        w("")
        for f in s["failures"]:
            w("- " + f)
        w("")
    w("## Load")
    w("")
    w("- %.1f minutes of churn: %d room slots, each opening a fresh room of "
      "%d participants that publish (VP8 %d kbit/s + Opus), subscribe to "
      "each other, unsubscribe and subscribe again, unpublish and publish "
      "again on a new PeerConnection, and leave after %.0f s on average "
      "(0.5–1.5×); the room closes with its last participant and the slot "
      "opens the next." % (minutes, p["rooms"], p["room_size"], p["video_kbps"], p["session_secs"]))
    w("- Endings: half `leave`; a quarter drop the WebSocket without a word; a "
      "quarter close both PeerConnections without a message, then leave.")
    w("- %d stable participants in one room the whole time, publishing and "
      "receiving each other." % p["stable"])
    w("- %d churn sessions (%.2f per second): %d joins, %d publications, %d "
      "unpublish, %d unsubscribe, %d resubscriptions, %d subscribe offers "
      "answered, %d leave, %d dropped sockets, %d silent PeerConnection "
      "closes; %d failed, %d requests refused (raced with a publisher "
      "leaving)." % (c["sessions"], s["churn_sessions_per_s"], c["joins"], c["publishes"],
                      c["unpublishes"], c["unsubscribes"], c["resubscribes"], c["subscribe_offers"],
                      c["leaves"], c["socket_drops"], c["pc_closes"], c["failed"],
                      c["refused_requests"]))
    ul = s.get("under_load") or {}
    w("- Under load (last sample): %s rooms, %s participants, %s forwarded "
      "tracks, %s PeerConnections, server CPU %s %%." % (
          ul.get("rooms"), ul.get("participants"), ul.get("forwarded_tracks"),
          ul.get("peer_connections"), num(ul.get("cpu_pct"), "{:.0f}")))
    w("")
    w("## Back to baseline")
    w("")
    bw, b, a = s["before_warmup"], s["baseline"], s.get("after") or {}
    if "warmup_secs" not in p:
        # Summaries of builds before the field: the phase marks say it.
        try:
            marks = dict(json.load(open(os.path.join(src, "series.json")))["marks"])
            p["warmup_secs"] = round(marks["warm-up: load stops"] - marks["warm-up: load"])
        except (OSError, ValueError, KeyError):
            p["warmup_secs"] = 0
    w("Baseline: after a warm-up of the same load (%g s) and once the server "
      "has been idle and steady for 5 s. Before the warm-up the server had "
      "%.1f MiB RSS, %.1f MiB live heap, %d FDs, %d threads, %d tasks, %d UDP "
      "sockets. Criterion: within %g s after the last client is gone, each "
      "quantity is back (RSS and live heap at most 5 %% above it, the others "
      "exactly) and stays there." % (
          p.get("warmup_secs", 0), bw["rss_mb"], bw.get("heap_mb", -1), bw["fds"], bw["threads"],
          bw["tasks"], bw["udp_sockets"], p["recovery_secs"]))
    w("")
    w("RSS split: baseline %.1f MiB anonymous + %.1f MiB file-backed (the "
      "binary's code as paged in); at the end %s + %s." % (
          b.get("rss_anon_mb", 0), b.get("rss_file_mb", 0),
          num(a.get("rss_anon_mb"), "{:.1f}"), num(a.get("rss_file_mb"), "{:.1f}")))
    w("")
    w("| quantity | baseline | peak under load | after %g s | back after | |" % p["recovery_secs"])
    w("|---|---:|---:|---:|---:|---|")
    for r in s["recovery"]:
        fmt = {"rss_mb": "{:.1f}", "heap_mb": "{:.2f}"}.get(r["name"], "{:.0f}")
        back = "–" if r["back_after_s"] is None else "%.0f s" % r["back_after_s"]
        w("| %s | %s | %s | %s | %s | %s |" % (
            r["name"], num(r["baseline"], fmt), num(r["peak"], fmt), num(r["end"], fmt), back,
            "ok" if r["pass"] else "**not back**"))
    w("")
    rec = {r["name"]: r for r in s["recovery"]}
    if c["sessions"] and "tasks" in rec and not rec["tasks"]["pass"]:
        left_tasks = rec["tasks"]["end"] - rec["tasks"]["baseline"]
        left_heap = rec.get("heap_mb", {}).get("end", 0) - rec.get("heap_mb", {}).get("baseline", 0)
        w("Left behind after the last client: %.0f tokio tasks and %.1f MiB of "
          "live heap, %.1f tasks and %.0f KiB per churn session." % (
              left_tasks, left_heap, left_tasks / c["sessions"], 1024 * left_heap / c["sessions"]))
        w("")
    # Growth under load, from the per-second data when it is there: tokio
    # tasks and RSS per participant in the first and the last minute.
    try:
        series = json.load(open(os.path.join(src, "series.json")))
        marks = dict(series["marks"])
        t0, t1 = marks["soak: load"], marks["soak: load stops"]
        def per(lo, hi, key):
            xs = [x for x in series["server"] if lo <= x["t"] < hi and x["participants"] > 0]
            if not xs:
                return None
            return sum(x[key] / x["participants"] for x in xs) / len(xs)
        first = (per(t0 + 30, t0 + 90, "tasks"), per(t0 + 30, t0 + 90, "rss_mb"))
        last = (per(t1 - 60, t1, "tasks"), per(t1 - 60, t1, "rss_mb"))
        if first[0] and last[0]:
            w("Under load, per participant the server reports: %.0f tokio tasks "
              "and %.1f MiB RSS in the second minute, %.0f tasks and %.1f MiB in "
              "the last minute." % (first[0], first[1], last[0], last[1]))
            w("")
    except (OSError, ValueError, KeyError):
        pass
    w("## Delivery to the stable participants")
    w("")
    w("- %s over the load (%d of %d packets); worst %d-second window %s; "
      "worst second %s; %d seconds below %g %%." % (
          num(st["delivery"] and st["delivery"] * 100, "{:.3f} %"), st["received"], st["expected"],
          p["delivery_window"], num(st["worst_window_pct"], "{:.3f} %"),
          num(st["worst_second_pct"], "{:.3f} %"), st["seconds_below"], p["min_delivery"] * 100))
    d = st.get("delay_ms") or {}
    w("- One-way delay through the server p50 %s ms, p99 %s ms, max %s ms." % (
        num(d.get("p50"), "{:.1f}"), num(d.get("p99"), "{:.1f}"), num(d.get("max"), "{:.1f}")))
    w("")
    w("## How it is measured, and why")
    w("")
    w("- Server side, once a second: RSS (and its anonymous and file-backed "
      "parts), open FDs and threads from `/proc/PID`; from `/metrics` the "
      "tokio tasks (`sfu_tokio_tasks`), UDP sockets (`sfu_udp_sockets`), live "
      "heap (`sfu_heap_live_bytes`, counted in the binary's allocator) and "
      "rooms, participants, publishers, tracks, connections and "
      "PeerConnections. `/proc` is read before each scrape, so the scrape's "
      "own connection is never among the FDs.")
    w("- The baseline is taken after a warm-up of the same load, not on a "
      "cold server: what the server sets up once (lazily initialised state, "
      "tokio's blocking threads, the allocator's pools for this load) is "
      "not a leak, and a leak grows with the length of the run, which the "
      "main phase shows.")
    w("- RSS and the live heap: after churn the live heap comes back to "
      "its baseline to the KiB, while anonymous RSS stays 5–15 % above it "
      "and moves by a few MiB with the server idle (memory mimalloc keeps "
      "for reuse; `MIMALLOC_PURGE_DELAY=0` changes nothing). RSS is "
      "reported with its verdict (at most 5 % above the baseline); the 2-minute CI test asserts the "
      "live heap instead, where a leak shows and allocator retention does "
      "not.")
    w("- Found: the server sometimes keeps one UDP socket (bound to the "
      "media address, an ephemeral port: an ICE host candidate), one FD and "
      "two tokio tasks after a churn phase of 30–60 s, in about half of the "
      "phases (and more often in longer ones), with no PeerConnection, "
      "participant or room left; the live heap stays up by about 0.1 MiB per "
      "such socket. The same signature as the gathering race "
      "`src/media/teardown.rs` works around (a candidate added to an ICE "
      "agent after it was closed keeps its socket and receive task); its "
      "path under churn is not found yet. Until it is fixed, "
      "`tests/soak.rs` is ignored.")
    w("")
    w("## Figures")
    w("")
    for png in figs:
        what = ("the whole run (grey lines: warm-up, baseline, load, load stops, last client gone)"
                if png == "soak.png" else "the last seconds, relative to the baseline")
        w("- [%s](soak/%s): %s" % (png, png, what))
    w("")
    with open(out, "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
