#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md from the load tester's JSON results.

usage: bench/report.py RESULTS_DIR OUT.md [--baseline BASELINE_DIR]

RESULTS_DIR holds <target>-<scenario>-<n>.json files written by
bench/run.sh. With --baseline, a second table compares our server's numbers
before (baseline) and after. Plots are copied to docs/bench/.
"""
import argparse
import glob
import json
import os
import platform
import shutil
import subprocess


def load(d):
    runs = {}
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        try:
            r = json.load(open(path))
        except (OSError, ValueError):
            continue
        if "summary" not in r:
            continue
        target = "sfu" if r["target"] == "rheo-sfu" else "janus"
        scenario = "admission" if r.get("label") == "admission" else r["scenario"]
        runs[(target, scenario, r["clients"])] = (path, r)
    return runs


def f(v, fmt="{:.1f}", none="–"):
    return none if v is None else fmt.format(v)


def pct(v):
    return "–" if v is None else "{:.3f} %".format(v * 100)


def ratio(a, b, fmt="{:.2f}"):
    if a is None or b is None or b == 0:
        return "–"
    return fmt.format(a / b)


def metrics(r):
    s, u = r["summary"], r.get("server") or {}
    d = s.get("delay_ms") or {}
    j = s.get("join_to_first_packet_ms") or {}
    return {
        "delivery": s.get("delivery"),
        "failed": s["failed"],
        "errored": s.get("errored", 0),
        "refused": s["refused"],
        "p50": d.get("p50"),
        "p99": d.get("p99"),
        "join_p99": j.get("p99"),
        "cpu_s": u.get("cpu_seconds"),
        "cpu_pct": u.get("cpu_pct"),
        "ppcs": u.get("packets_per_cpu_second"),
        "rss": u.get("rss_window_mb"),
        "rss_sub": u.get("rss_per_subscriber_mb"),
        "pps": s.get("received_pps"),
        "window": r["window"][1] - r["window"][0],
    }


HEAD = ("| N | SFU | delivery | sessions failed / with errors / refused | delay p50 / p99 ms | join→first p99 ms "
        "| forwarded pkt/s | CPU % | pkts per CPU-s | RSS MB | MB per subscriber |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")


def row(n, name, m):
    return "| {} | {} | {} | {} / {} / {} | {} / {} | {} | {} | {} | {} | {} | {} |\n".format(
        n, name, pct(m["delivery"]), m["failed"], m["errored"], m["refused"], f(m["p50"], "{:.2f}"), f(m["p99"], "{:.2f}"),
        f(m["join_p99"], "{:.0f}"), f(m["pps"], "{:.0f}"), f(m["cpu_pct"], "{:.0f}"),
        f(m["ppcs"], "{:.0f}"), f(m["rss"]), f(m["rss_sub"], "{:.3f}"))


def section(runs, scenario, title):
    ns = sorted({n for (t, s, n) in runs if s == scenario})
    if not ns:
        return ""
    out = "### {}\n\n".format(title) + HEAD
    ratios = ("\n| N | pkts per CPU-s (ours / Janus) | CPU-s (ours / Janus) | RSS (ours / Janus) "
              "| delay p99 (ours / Janus) | delivery (ours − Janus) |\n|---:|---:|---:|---:|---:|---:|\n")
    any_ratio = False
    for n in ns:
        ms = {}
        for t, name in (("sfu", "rheo-sfu"), ("janus", "Janus")):
            if (t, scenario, n) in runs:
                ms[t] = metrics(runs[(t, scenario, n)][1])
                out += row(n, name, ms[t])
        if len(ms) == 2:
            any_ratio = True
            a, b = ms["sfu"], ms["janus"]
            dd = "–" if a["delivery"] is None or b["delivery"] is None else "{:+.3f} pp".format(
                (a["delivery"] - b["delivery"]) * 100)
            ratios += "| {} | **{}** | {} | {} | {} | {} |\n".format(
                n, ratio(a["ppcs"], b["ppcs"]), ratio(a["cpu_s"], b["cpu_s"]),
                ratio(a["rss"], b["rss"]), ratio(a["p99"], b["p99"]), dd)
    return out + (ratios if any_ratio else "") + "\n"


def max_fanout(runs):
    out = ""
    for t, name in (("sfu", "rheo-sfu"), ("janus", "Janus")):
        ok = [n for (tt, s, n), (_, r) in runs.items() if tt == t and s == "fanout"
              and (r["summary"].get("delivery") or 0) >= 0.999
              and r["summary"]["failed"] == 0 and r["summary"]["refused"] == 0]
        tried = sorted(n for (tt, s, n) in runs if tt == t and s == "fanout")
        out += "- {}: largest fan-out with ≥ 99.9 % delivery: **{}** (sizes tried: {})\n".format(
            name, max(ok) if ok else "none", ", ".join(map(str, tried)) or "none")
    return out


def plots(runs, dest):
    os.makedirs(dest, exist_ok=True)
    lines = []
    for (t, s, n), (path, r) in sorted(runs.items()):
        png = os.path.splitext(path)[0] + ".png"
        if os.path.exists(png):
            name = "{}-{}-{}.png".format(t, s, n)
            shutil.copy(png, os.path.join(dest, name))
            lines.append("[{} {} N={}](bench/{})".format(
                "rheo-sfu" if t == "sfu" else "Janus", s, n, name))
    # The folder belongs to the report: plots of runs it no longer shows go.
    shown = {line.rsplit("/", 1)[1].rstrip(")") for line in lines}
    for f in os.listdir(dest):
        if f.endswith(".png") and f not in shown:
            os.remove(os.path.join(dest, f))
    return lines


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--baseline", help="results of our server before the optimizations")
    a = ap.parse_args()
    runs = load(a.results)
    any_run = next(iter(runs.values()))[1] if runs else None
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    janus = sh("janus --version 2>/dev/null | head -1") or "janus (version unknown)"
    # The commit the runs were made at (bench/run.sh records it).
    try:
        rev = open(os.path.join(a.results, "commit.txt")).read().strip()
    except OSError:
        rev = sh("git rev-parse --short HEAD") + " (when the report was made)"
    md = "# Benchmarks: rheo-sfu and Janus side by side\n\n"
    md += ("Generated by `bench/report.py` from the results of `bench/run.sh` in `{}` "
           "(do not edit by hand; rerun the script).\n\n").format(os.path.relpath(a.results))
    md += "Reproduce: `bench/run.sh` (installs Janus from Debian, builds release binaries, "
    md += "runs everything inside a network namespace, rewrites this file).\n\n"
    md += "## Setup\n\n"
    md += "- Machine: {} cores, {}; kernel {}; load tester, SFU and all peers on the same machine.\n".format(
        os.cpu_count(), cpu or "unknown CPU", platform.release())
    md += "- rheo-sfu at commit `{}` (release build); {} from Debian, VideoRoom plugin, WebSocket transport.\n".format(rev, janus)
    if any_run:
        m = any_run["media"]
        md += ("- Load: the `loadtest` binary, webrtc-rs peers, one WebSocket per participant. Each publisher "
               "sends VP8 {} kbit/s at {} fps ({:.0f} pkt/s) and Opus {} pkt/s; every payload carries a track id, "
               "a counter and a send timestamp. Ramp-up {} joins/s, measurement window {} s after every "
               "subscriber received media.\n").format(m["video_kbps"], m["video_fps"], m["video_pps"],
                                                       m["audio_pps"], any_run["ramp_rate"],
                                                       any_run["window"][1] - any_run["window"][0])
    md += ("- Each run starts a fresh SFU process; CPU seconds (utime+stime) and RSS come from `/proc/<pid>` "
           "sampled every second by the load tester over the window. *pkts per CPU-s* = packets delivered "
           "to subscribers per SFU CPU second. *Delay* is one-way publisher → SFU → subscriber including "
           "both webrtc-rs client stacks (the same for both SFUs). *MB per subscriber* = (RSS in window − "
           "RSS before the first client) / subscribers.\n")
    md += ("- The load tester shares the 2 cores with the SFU under test, so at large N the client side "
           "saturates too; both SFUs see exactly the same client behaviour.\n\n")
    md += "## Results\n\n"
    md += section(runs, "fanout", "Fan-out: 1 publisher → N subscribers")
    md += section(runs, "room", "Room: N participants, each publishing and receiving all others")
    md += section(runs, "churn", "Churn: one publisher, N subscriber slots joining and leaving (2 joins/s)")
    md += "### Capacity\n\n" + max_fanout(runs) + "\n"
    adm = [(n, r) for (t, sc, n), (_, r) in runs.items() if t == "sfu" and sc == "admission"]
    for n, r in adm:
        s = r["summary"]
        subs = [c for c in r["clients_detail"] if c["role"] != "publisher"]
        worst = min((c["delivery"] for c in subs if c["admitted"] and c["delivery"] is not None), default=None)
        md += ("### Admission control at twice the capacity (rheo-sfu)\n\n"
               "{} subscribers against a server with `MAX_FORWARDED_TRACKS={}`: {} admitted, {} refused "
               "with `room-full`, {} failed; delivery to the admitted {}, worst admitted subscriber {}; "
               "delay p99 {} ms.\n\n").format(
            n, n, s["admitted"] - 1, s["refused"], s["failed"],
            pct(s.get("delivery")), pct(worst), f((s.get("delay_ms") or {}).get("p99"), "{:.2f}"))
    if a.baseline:
        base = load(a.baseline)
        md += "## Before and after optimization (rheo-sfu)\n\n"
        md += "Baseline: `{}`.\n\n".format(os.path.relpath(a.baseline))
        md += ("| scenario | N | pkts per CPU-s before → after | CPU % before → after | "
               "RSS MB before → after | delay p99 ms before → after | delivery before → after |\n"
               "|---|---:|---:|---:|---:|---:|---:|\n")
        for key in sorted(k for k in runs if k[0] == "sfu" and k in base):
            b, n_ = metrics(base[key][1]), metrics(runs[key][1])
            md += "| {} | {} | {} → {} | {} → {} | {} → {} | {} → {} | {} → {} |\n".format(
                key[1], key[2], f(b["ppcs"], "{:.0f}"), f(n_["ppcs"], "{:.0f}"),
                f(b["cpu_pct"], "{:.0f}"), f(n_["cpu_pct"], "{:.0f}"), f(b["rss"]), f(n_["rss"]),
                f(b["p99"], "{:.2f}"), f(n_["p99"], "{:.2f}"), pct(b["delivery"]), pct(n_["delivery"]))
        md += "\n"
    links = plots(runs, os.path.join(os.path.dirname(a.out), "bench"))
    if links:
        md += "## Plots\n\nDelivery, delay, clients and server CPU/RSS per second of each run:\n\n"
        md += "".join("- {}\n".format(l) for l in links) + "\n"
    notes = os.path.join(os.path.dirname(a.out), "BENCHMARKS-notes.md")
    if os.path.exists(notes):
        md += open(notes).read()
    open(a.out, "w").write(md)


if __name__ == "__main__":
    main()
