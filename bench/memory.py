#!/usr/bin/env python3
"""Memory bound: does caching-proxy stay within --cache-size?

Scenarios (the clients and a static nginx origin without an access log on
core 0; the proxy on every core, as deployed: it runs a worker thread per
core, and each thread's allocator heap is part of what it costs; set
PROXY_CORES=1 to pin it to one):

- large: --cache-size 64MiB, 600 distinct 1 MiB responses filled by 8
  concurrent clients (about ten times the cache), with the write-behind
  snapshotting as it goes; then SIGTERM (final snapshot) and a restart
  that loads the full snapshot.
- default: the default 256MiB, 600 distinct 1 MiB fills.
- small: --cache-size 16MiB, 170,000 distinct 200-byte responses with
  `Vary: Accept-Encoding` (four spellings), about ten times the cache.

For each: peak RSS (the kernel's VmHWM of the process), RSS at rest a few
seconds later, and what the store counts; the target is peak RSS <= 1.25 x
cache size + 40 MB. Writes bench/results/<date>-memory.md.

Run it through bench/memory.sh, which installs what is missing and builds.
"""

import concurrent.futures
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, LOAD_CORE, PROXY_CORE, ROOT, nginx_conf, start, wait_ready  # noqa: E402

# Another build to measure (a diagnostic build with another allocator).
BIN = Path(os.environ.get("CACHING_PROXY_BIN", BIN))
ORIGIN_PORT, PROXY_PORT, ADMIN_PORT = 18110, 18111, 18112
MIB = 1024 * 1024
LARGE_FILLS = int(os.environ.get("LARGE_FILLS", "600"))
SMALL_FILLS = int(os.environ.get("SMALL_FILLS", "170000"))
ONLY = os.environ.get("ONLY", "large,default,small").split(",")
PROXY_CORES = os.environ.get("PROXY_CORES", f"{LOAD_CORE},{PROXY_CORE}")


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1))


def admin(method="GET", path="/stats"):
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=30)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    return json.loads(body) if response.status == 200 else None


def fill(prefix: str, count: int, connections: int, spellings=None):
    """`count` distinct GETs (`prefix` + n), on `connections` keep-alive
    connections at once, each read to its end; `spellings` rotate through
    Accept-Encoding. Returns the number of non-200 answers."""
    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", PROXY_PORT, timeout=60)
        bad = 0
        for n in range(k, count, connections):
            headers = {"Accept-Encoding": spellings[n % len(spellings)]} if spellings else {}
            conn.request("GET", f"{prefix}{n}", headers=headers)
            response = conn.getresponse()
            response.read()
            bad += response.status != 200
        conn.close()
        return bad
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        return sum(pool.map(worker, range(connections)))


class Proxy:
    def __init__(self, work: Path, cache_size: str, cache_file: Path):
        self.log = open(work / "caching-proxy.log", "ab")
        args = [BIN, "--port", PROXY_PORT, "--origin", f"http://127.0.0.1:{ORIGIN_PORT}", "--cache-file", cache_file,
                "--cache-size", cache_size, "--admin", f"127.0.0.1:{ADMIN_PORT}"]
        started = time.monotonic()
        self.proc = subprocess.Popen(["taskset", "-c", PROXY_CORES, *map(str, args)], stdout=self.log, stderr=self.log,
                                     env={**os.environ, "RUST_LOG": "warn"})
        wait_ready(PROXY_PORT, "/ready-check")
        self.startup_ms = (time.monotonic() - started) * 1000

    def peak_mb(self):
        return status_kb(self.proc.pid, "VmHWM") / 1024

    def rest_mb(self, settle=4.0):
        time.sleep(settle)
        return status_kb(self.proc.pid, "VmRSS") / 1024

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def row(name, size_mib, proxy, extra=""):
    stats = admin()["cache"]
    rest = proxy.rest_mb()
    peak = proxy.peak_mb()
    bound = 1.25 * size_mib * MIB / 1e6 + 40
    result = {"scenario": name, "cache_mib": size_mib, "peak_mb": peak * MIB / 1e6, "rest_mb": rest * MIB / 1e6,
              "bound_mb": bound, "entries": stats["entries"], "store_mb": stats["bytes"] / 1e6,
              "evictions": stats["evictions"], "extra": extra}
    result["ok"] = result["peak_mb"] <= bound
    print(f"{name:<28} peak {result['peak_mb']:7.1f} MB  rest {result['rest_mb']:7.1f} MB  bound {bound:6.1f} MB  "
          f"store {result['store_mb']:6.1f} MB in {stats['entries']} entries  {'ok' if result['ok'] else 'OVER'} {extra}",
          flush=True)
    return result


def main():
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the clients beside the origin
    with tempfile.TemporaryDirectory(prefix="caching-proxy-memory-") as tmp:
        work = Path(tmp)
        www = work / "www"
        www.mkdir()
        (www / "1m").write_bytes(os.urandom(MIB))
        (www / "200b").write_bytes(os.urandom(200))
        (www / "ready-check").write_bytes(b"ok")
        server = f"""
        listen 127.0.0.1:{ORIGIN_PORT};
        root {www};
        access_log off;
        location /big/ {{ add_header Cache-Control "public, max-age=3600"; try_files /1m =404; }}
        location /small/ {{ add_header Cache-Control "public, max-age=3600"; add_header Vary Accept-Encoding; try_files /200b =404; }}
        location = /ready-check {{ add_header Cache-Control "no-store"; }}
"""
        origin = start(["nginx", "-c", nginx_conf(work, "origin", server)], LOAD_CORE)
        results = []
        try:
            wait_ready(ORIGIN_PORT, "/ready-check")
            cache = work / "cache.json"

            if "large" in ONLY:
                large(work, cache, results)
            if "default" in ONLY:
                default(work, cache, results)
            if "small" in ONLY:
                small(work, cache, results)
        finally:
            origin.terminate()
            origin.wait()
    report(results)
    if not all(r["ok"] for r in results):
        sys.exit(1)


def large(work, cache, results):
    proxy = Proxy(work, "64MiB", cache)
    fill("/big/", LARGE_FILLS, 8)
    results.append(row("large: 64 MiB, 1 MiB fills", 64, proxy, f"{LARGE_FILLS} fills"))
    code = proxy.stop()
    snapshot_mb = cache.stat().st_size / 1e6
    proxy = Proxy(work, "64MiB", cache)
    results.append(row("large: restart on the snapshot", 64, proxy,
                       f"snapshot {snapshot_mb:.0f} MB, exit {code}, start-up {proxy.startup_ms:.0f} ms"))
    proxy.stop()


def default(work, cache, results):
    cache.unlink(missing_ok=True)
    proxy = Proxy(work, "256MiB", cache)
    fill("/big/", LARGE_FILLS, 8)
    results.append(row("default: 256 MiB, 1 MiB fills", 256, proxy, f"{LARGE_FILLS} fills"))
    proxy.stop()


def small(work, cache, results):
    cache.unlink(missing_ok=True)
    proxy = Proxy(work, "16MiB", cache)
    base = status_kb(proxy.proc.pid, "VmRSS") / 1024
    fill("/small/", SMALL_FILLS, 16, ["gzip", "gzip, deflate, br", "br", "identity"])
    result = row("small: 16 MiB, 200 B + Vary", 16, proxy, f"{SMALL_FILLS} fills")
    result["rss_per_entry"] = (result["rest_mb"] * 1e6 - base * MIB) / max(result["entries"], 1)
    result["store_per_entry"] = result["store_mb"] * 1e6 / max(result["entries"], 1)
    print(f"  per entry: store counts {result['store_per_entry']:.0f} B, RSS grew "
          f"{result['rss_per_entry']:.0f} B", flush=True)
    results.append(result)
    proxy.stop()


def report(results):
    now = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    lines = [f"# Memory bound {now:%Y-%m-%d %H:%M} UTC (commit {commit})\n",
             "Peak RSS is the process's VmHWM; the bound is 1.25 x cache size + 40 MB. "
             f"`bench/memory.sh`; the proxy on cores {PROXY_CORES}, the clients and the origin on core {LOAD_CORE}.\n",
             "| scenario | cache | peak RSS | bound | RSS at rest | store counts | entries | evictions | notes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        lines.append(f"| {r['scenario']} | {r['cache_mib']} MiB | {r['peak_mb']:.1f} MB | {r['bound_mb']:.1f} MB | "
                     f"{r['rest_mb']:.1f} MB | {r['store_mb']:.1f} MB | {r['entries']} | {r['evictions']} | {r['extra']} |")
    for r in results:
        if "rss_per_entry" in r:
            lines.append(f"\n{r['scenario']}: the store counts {r['store_per_entry']:.0f} B per entry; RSS grew "
                         f"{r['rss_per_entry']:.0f} B per entry held.\n")
    out = ROOT / "bench" / "results" / f"{now:%Y-%m-%d-%H%M}-memory.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"\nreport: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
