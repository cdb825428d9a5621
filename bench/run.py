#!/usr/bin/env python3
"""Side-by-side benchmark: caching-proxy, nginx proxy_cache, Varnish, and a
static nginx ("direct", the ceiling of this machine).

Topology for 2 cores: the load generator and the origin (static nginx,
no access log) on core 0; the target under test alone on core 1. Every
target runs in the same invocation, interleaved over ROUNDS rounds (the
order rotates each round). Each run records req/s, p50/p99 latency, the
CPU time the target's process tree spent per request (user + system) and
how busy each core was. A run whose load core was saturated is flagged:
its req/s measured the load generator, so ratios of req/s use only the
rounds where neither target's run was; the CPU ratio (nginx's CPU per
request over the target's) uses every round.

Scenarios: hits of 1 KiB and 64 KiB, misses, no-store passes (wrk, 64
connections); hits over HTTPS (TLS 1.3, keep-alive) and over HTTP/2
(h2load, 8 connections x 100 streams, TLS); passes and misses at one
fixed rate for every target (h2load, open loop: CPU and tails at equal
load; misses are not among them, as h2load repeats its URL list per
connection); hits and misses on a cache filled to 90% of 64 MiB (evicting);
then memory per entry, hits while a snapshot is written, start-up, and a
cold start on a 1 GiB snapshot (bench/coldstart.py).

Run it through bench/run.sh, which installs what is missing and builds.
"""

import datetime
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import coldstart
import report
from measure import tree_rss_kb
from load import h2load, measured, median, to_ms, wrk  # noqa: F401
from targets import (  # noqa: F401  (re-exported for the other bench scripts)
    ADMIN_PORT, BIN, LOAD_CORE, PORTS, PROXY_CORE, ROOT, STATIC_LOCATIONS, TLS_PORTS, Bench, dir_bytes, get, make_www,
    nginx_cache_conf, nginx_conf, nginx_version, origin_requests, origin_served, start, varnish_version, wait_ready)

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
MEMORY_ENTRIES = int(os.environ.get("MEMORY_ENTRIES", "20000"))
FULL_CACHE_MIB = 64
PASS_RATE = 15000
ONLY = [s for s in os.environ.get("ONLY", "").split(",") if s]
TARGETS = ["caching-proxy", "nginx", "varnish", "direct"]
CACHES = TARGETS[:3]
TLS_TARGETS = ["caching-proxy", "nginx", "direct"]
# The full-cache scenarios run second instances of the caches, 64 MiB each.
FULL = {"caching-proxy": "caching-proxy/full", "nginx": "nginx/full", "varnish": "varnish/full"}


class Scenario:
    """One scenario: its targets and how one run loads a target."""

    def __init__(self, name, targets, load, warm=None):
        self.name, self.targets, self.load, self.warm = name, targets, load, warm


def http_url(target, path):
    return f"http://127.0.0.1:{PORTS[target]}{path}"


def https_url(target, path):
    return f"https://127.0.0.1:{TLS_PORTS[target]}{path}"


def miss_script(work: Path, prefix: str) -> Path:
    script = work / f"miss-{prefix.replace('/', '-')}.lua"
    script.write_text('local n = 0\nrequest = function()\n  n = n + 1\n'
                      f'  return wrk.format("GET", "/u/{prefix}-" .. n)\nend\n')
    return script


def scenarios(work: Path):
    """Every scenario; each `load(target, round)` runs one measured load."""

    def hit(path, tls=False):
        def run(target, r):
            return wrk(LOAD_CORE, (https_url if tls else http_url)(target, path), DURATION)
        return run

    def miss(target, r):
        return wrk(LOAD_CORE, http_url(target, "/"), DURATION, script=miss_script(work, f"r{r}-{target}"))

    def http2(target, r):
        return h2load(LOAD_CORE, https_url(target, "/1k"), DURATION, connections=8, streams=100)

    def pass_at_rate(target, r):
        return h2load(LOAD_CORE, http_url(target, "/nostore"), DURATION, 64, rate=PASS_RATE, h1=True)

    def warm(path, tls=False):
        def run(target):
            for _ in range(3):
                get(TLS_PORTS[target] if tls else PORTS[target], path, tls=tls)
        return run

    full = list(FULL.values())
    return [
        Scenario("hit 1 KiB", TARGETS, hit("/1k"), warm("/1k")),
        Scenario("hit 64 KiB", TARGETS, hit("/64k"), warm("/64k")),
        Scenario("miss", CACHES, miss),
        Scenario("no-store", CACHES, hit("/nostore")),
        Scenario("HTTPS hit 1 KiB", TLS_TARGETS, hit("/1k", tls=True), warm("/1k", tls=True)),
        Scenario("HTTP/2 hit 1 KiB", TLS_TARGETS, http2, warm("/1k", tls=True)),
        Scenario(f"no-store at {PASS_RATE // 1000}k req/s", CACHES, pass_at_rate),
        Scenario("full cache: hit 1 KiB", full, hit("/1k"), warm("/1k")),
        Scenario("full cache: miss", full, miss),
    ]


def run_rounds(bench: Bench, chosen):
    results = {s.name: {t: [] for t in s.targets} for s in chosen}
    for r in range(ROUNDS):
        for i, scenario in enumerate(chosen):
            targets = scenario.targets
            order = targets[(r + i) % len(targets):] + targets[:(r + i) % len(targets)]
            for target in order:
                if scenario.warm:
                    scenario.warm(target)
                before = origin_served()
                result = measured(bench.pid(target), lambda: scenario.load(target, r))
                result["origin_per_request"] = (origin_served() - before - 1) / max(result["requests"], 1)
                results[scenario.name][target].append(result)
                busy = result["busy"]
                print(f"round {r + 1}/{ROUNDS} {scenario.name:<24} {target:<19} {result['rps']:>9.0f} req/s "
                      f"cpu {result['cpu_us']:5.1f} us/req p99 {result['p99']:6.2f} ms "
                      f"cores {busy.get(LOAD_CORE, 0):.2f}/{busy.get(PROXY_CORE, 0):.2f} "
                      f"origin/req {result['origin_per_request']:.2f} errors {result['errors']}", flush=True)
    return results


def admin_stats(port=ADMIN_PORT):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/stats")
    return json.loads(conn.getresponse().read())


def snapshot_writes():
    return admin_stats()["snapshot"]["writes"]


def await_snapshot(writes_before, timeout=120.0):
    """Waits until more than `writes_before` snapshots are written."""
    deadline = time.monotonic() + timeout
    while snapshot_writes() <= writes_before:
        if time.monotonic() > deadline:
            raise SystemExit("the snapshot was not written in time")
        time.sleep(0.1)


def settle_snapshots(quiet_for=15.0, timeout=180.0):
    """Waits until the write-behind has caught up: no snapshot written for
    `quiet_for` seconds (longer than its pacing)."""
    deadline = time.monotonic() + timeout
    last, since = snapshot_writes(), time.monotonic()
    while time.monotonic() - since < quiet_for and time.monotonic() < deadline:
        time.sleep(1)
        now = snapshot_writes()
        if now != last:
            last, since = now, time.monotonic()


def fill_to(bench: Bench, target: str, share: float):
    """Fills a full-cache instance with distinct 1 KiB objects until its
    cache holds `share` of its size (by its own account); returns that."""
    port = PORTS[target]
    limit = FULL_CACHE_MIB << 20
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while True:
        for _ in range(500):
            conn.request("GET", f"/u/fill-{n}")
            conn.getresponse().read()
            n += 1
        used = cache_used(bench, target)
        if used >= share * limit or n > 400_000:
            return used / limit


def cache_used(bench: Bench, target: str) -> int:
    if target.startswith("caching-proxy"):
        return admin_stats(bench.admin_port(target))["cache"]["bytes"]
    if target.startswith("nginx"):
        return dir_bytes(bench.cache_dir(target))
    out = subprocess.run(["varnishstat", "-1", "-n", str(bench.work / target.replace("/", "-")), "-f",
                          "SMA.s0.g_bytes"], capture_output=True, text=True).stdout
    m = re.search(r"SMA\.s0\.g_bytes\s+(\d+)", out)
    return int(m.group(1)) if m else 0


def during_snapshot(bench: Bench):
    """Hit 1 KiB on the cache the miss rounds filled, alone and while the
    snapshot of it is being written (`POST /snapshot` on the admin API
    starts one in the background, as the write-behind does)."""
    url = http_url("caching-proxy", "/1k")
    get(PORTS["caching-proxy"], "/1k")
    entries = admin_stats()["cache"]["entries"]
    settle_snapshots()
    quiet, writing = [], []
    for r in range(ROUNDS):
        quiet.append(wrk(LOAD_CORE, url, DURATION)["rps"])
        before = snapshot_writes()
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=5)
        conn.request("POST", "/snapshot")
        if conn.getresponse().status != 202:
            raise SystemExit("POST /snapshot was refused")
        writing.append(wrk(LOAD_CORE, url, DURATION)["rps"])
        await_snapshot(before)  # the next quiet run must be quiet
        print(f"round {r + 1}/{ROUNDS} snapshot   quiet {quiet[-1]:.0f} req/s, writing {writing[-1]:.0f} req/s",
              flush=True)
    return {"entries": entries, "quiet": median(quiet), "writing": median(writing),
            "ratio": median([w / q for w, q in zip(writing, quiet)])}


def memory(bench: Bench):
    per_entry = {}
    for target in CACHES:
        bench.stop(target)
        if target == "caching-proxy":
            bench.file(target, ".cache.json").unlink(missing_ok=True)
        proc = bench.start(target)
        get(PORTS[target], "/1k")
        extra = (lambda: dir_bytes(bench.cache_dir(target))) if target == "nginx" else (lambda: 0)
        base = tree_rss_kb(proc.pid) * 1024 + extra()
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[target], timeout=10)
        for n in range(MEMORY_ENTRIES):
            conn.request("GET", f"/u/mem-{n}")
            conn.getresponse().read()
        if target == "caching-proxy":
            settle_snapshots(quiet_for=3.0)  # sample after the write-behind, not during it
        else:
            time.sleep(1)
        # Steady state: the lowest of samples over 6 s, so that buffers a
        # background task holds for a moment do not count per entry.
        samples = []
        for _ in range(12):
            samples.append(tree_rss_kb(proc.pid) * 1024 + extra())
            time.sleep(0.5)
        per_entry[target] = (min(samples) - base) / MEMORY_ENTRIES
        print(f"memory {target:<13} {per_entry[target]:.0f} bytes per 1 KiB entry", flush=True)
    return per_entry


def startup(bench: Bench):
    bench.stop("caching-proxy")
    began = time.monotonic()
    bench.start("caching-proxy")
    return (time.monotonic() - began) * 1000


def main():
    if (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins load and proxy to two different cores")
    snapshot_file = Path(os.environ.get("TMPDIR", "/tmp")) / "caching-proxy-snapshot-bench.txt"
    snapshot_text = snapshot_file.read_text() if snapshot_file.exists() else "(snapshot bench not run)"
    with tempfile.TemporaryDirectory(prefix="caching-proxy-bench-") as tmp:
        bench = Bench(Path(tmp))
        chosen = [s for s in scenarios(bench.work) if not ONLY or any(o in s.name for o in ONLY)]
        needed = sorted({t for s in chosen for t in s.targets})
        try:
            bench.start_origin()
            fullness = {}
            for target in needed:
                size = FULL_CACHE_MIB if target in FULL.values() else None
                bench.start(target, cache_size=size)
                if size:
                    fullness[target] = fill_to(bench, target, 0.9)
                    print(f"{target}: filled to {fullness[target]:.0%} of {FULL_CACHE_MIB} MiB", flush=True)
            results = run_rounds(bench, chosen)
            extras = {"fullness": fullness}
            if not ONLY:
                for target in FULL.values():
                    bench.stop(target)
                extras["snapshot_load"] = during_snapshot(bench)
                extras["per_entry"] = memory(bench)
                extras["startup_ms"] = startup(bench)
                bench.stop_all()
                bench.start_origin()
                extras["cold"] = coldstart.run(bench)
        finally:
            bench.stop_all()
            bench.clean()
    extras["snapshot_text"] = snapshot_text
    text, summary = report.write(results, extras, ROUNDS, DURATION)
    stamp = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d-%H%M}"
    only = "-" + "-".join(re.sub(r"\W+", "_", o) for o in ONLY) if ONLY else ""
    out = ROOT / "bench" / "results" / f"{stamp}-{ROUNDS}x{DURATION}s{only}.md"
    out.write_text(text)
    print(f"\nreport: {out.relative_to(ROOT)}")
    print(summary)


if __name__ == "__main__":
    main()
