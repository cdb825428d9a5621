#!/usr/bin/env python3
"""The fleet benchmark: three caching-proxy instances sharing one
redis-server, in front of a static nginx origin.

1. Origin requests per distinct URL: every URL is asked of all three
   instances at once (3 x URLS requests, 48 at a time); the origin's access
   log counts what reached it. Target 1.00.
2. Second-tier hit against first-tier hit: wrk walks fresh URLs that
   instance B filled into Redis, on instance A (each request a first-tier
   miss answered by Redis and promoted), then walks them again (first-tier
   hits); throughput, p50/p99, and A's CPU time per request.
3. Redis stopped (SIGSTOP): cold misses on A with Redis up, then with Redis
   stopped; the added latency per request, and errors (must be 0).

Instance A alone on core 1; wrk, the origin, Redis and instances B and C on
core 0 (B and C are idle while A is measured). Run it through
bench/fleet.sh.
"""

import concurrent.futures
import datetime
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared helpers of bench/run.py)

ROOT = run.ROOT
BIN = run.BIN
DURATION = int(os.environ.get("DURATION", "5"))
URLS = int(os.environ.get("URLS", "3000"))
FILL = int(os.environ.get("FILL", "30"))
WALK = int(os.environ.get("WALK", "2"))
HOST = "fleet.bench"
REDIS_PORT = 18120
ORIGIN_PORT = 18100
NODES = {"a": (18121, 18131, run.PROXY_CORE), "b": (18122, 18132, run.LOAD_CORE), "c": (18123, 18133, run.LOAD_CORE)}


def walk_script(work: Path, name: str, prefix: str, limit: int = 0) -> Path:
    """A wrk script asking /u/<prefix><n> for n = 1, 2, ... (wrapping at limit)."""
    script = work / f"{name}.lua"
    wrap = f"if counter > {limit} then counter = 1 end" if limit else ""
    script.write_text(f"""
counter = 0
request = function()
  counter = counter + 1
  {wrap}
  return wrk.format("GET", "/u/{prefix}" .. counter, {{ Host = "{HOST}" }})
end
""")
    return script


def wrk(port: int, script: Path, connections: int, duration: int = DURATION):
    cmd = ["taskset", "-c", run.LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "-s", str(script), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(pct + r"%\s+([\d.]+)(us|ms|s)", out)
        result[key] = run.to_ms(*m.groups())
    m = re.search(r"Max\s+([\d.]+)(us|ms|s)", out) or re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    result["max"] = run.to_ms(*m.groups()) if m else float("nan")
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": HOST})
    response = conn.getresponse()
    response.read()
    return response.status


class Fleet:
    def __init__(self, work: Path):
        self.work = work
        self.procs = {}
        self.www = run.make_www(work)
        self.origin_log = work / "origin.access.log"

    def start(self):
        server = f"""
        listen 127.0.0.1:{ORIGIN_PORT};
        root {self.www};
        access_log {self.origin_log};
{run.STATIC_LOCATIONS}"""
        self.procs["origin"] = run.start(["nginx", "-c", run.nginx_conf(self.work, "origin", server)], run.LOAD_CORE)
        run.wait_ready(ORIGIN_PORT)
        self.procs["redis"] = run.start(["redis-server", "--port", REDIS_PORT, "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--maxmemory", "512mb",
                                         "--maxmemory-policy", "volatile-lru"], run.LOAD_CORE)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).stdout.strip() != b"PONG":
            if time.monotonic() > deadline:
                raise SystemExit("redis-server does not answer")
            time.sleep(0.05)
        for name, (port, admin, core) in NODES.items():
            config = self.work / f"{name}.toml"
            config.write_text(f"""
[[listeners]]
address = "127.0.0.1:{port}"
[[origins]]
name = "origin"
url = "http://127.0.0.1:{ORIGIN_PORT}"
[admin]
address = "127.0.0.1:{admin}"
[cache]
file = "{name}-cache.json"
max_size = "1GiB"
write_delay = "1h"
[cache.shared]
url = "redis://127.0.0.1:{REDIS_PORT}"
node_id = "{name}"
""")
            log = open(self.work / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(["taskset", "-c", core, str(BIN), "--config", str(config)],
                                                stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
            run.wait_ready(port, "/nostore")

    def stop(self):
        for name, proc in reversed(list(self.procs.items())):
            try:
                proc.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def origin_requests_per_url(fleet: Fleet):
    before = run.origin_requests(fleet.origin_log)
    ports = [port for port, _, _ in NODES.values()]
    jobs = [(ports[j], f"/u/once{i}") for i in range(URLS) for j in range(3)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        statuses = list(pool.map(lambda job: get(*job), jobs))
    time.sleep(0.5)  # the origin's log is written as it answers; let it flush
    fetched = run.origin_requests(fleet.origin_log) - before
    return {"urls": URLS, "requests": len(jobs), "origin": fetched, "per_url": fetched / URLS,
            "errors": sum(1 for s in statuses if s != 200)}


def tiers(fleet: Fleet):
    a_port, b_port = NODES["a"][0], NODES["b"][0]
    a_pid = fleet.procs["a"].pid
    # B fills Redis with fresh URLs: a miss through B costs much more than
    # a second-tier hit on A, so B fills for FILL seconds and A walks them
    # for WALK seconds (the report says whether A stayed within them).
    fill = wrk(b_port, walk_script(fleet.work, "fill", "t"), 64, FILL)
    limit = fill["requests"]
    cpu = cpu_seconds(a_pid)
    second = wrk(a_port, walk_script(fleet.work, "second", "t", limit), 64, WALK)
    second["cpu_us"] = (cpu_seconds(a_pid) - cpu) / second["requests"] * 1e6
    walked = second["requests"]
    cpu = cpu_seconds(a_pid)
    first = wrk(a_port, walk_script(fleet.work, "first", "t", min(walked, limit)), 64, WALK)
    first["cpu_us"] = (cpu_seconds(a_pid) - cpu) / first["requests"] * 1e6
    second["fresh"] = walked <= limit
    return {"first": first, "second": second, "filled": fill["requests"]}


def redis_stopped(fleet: Fleet):
    a_port = NODES["a"][0]
    up = wrk(a_port, walk_script(fleet.work, "cold-up", "c-up"), 4)
    fleet.procs["redis"].send_signal(signal.SIGSTOP)
    try:
        down = wrk(a_port, walk_script(fleet.work, "cold-down", "c-down"), 4)
        hits = wrk(a_port, walk_script(fleet.work, "hits-down", "c-up", 1000), 64)
    finally:
        fleet.procs["redis"].send_signal(signal.SIGCONT)
    return {"up": up, "down": down, "hits_down": hits}


def report(per_url, tier, stopped):
    f, s = tier["first"], tier["second"]
    up, down, hits = stopped["up"], stopped["down"], stopped["hits_down"]
    lines = [
        f"# Fleet benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "Three caching-proxy instances, one redis-server (volatile-lru), static nginx origin;",
        f"instance A alone on core 1, everything else on core 0; wrk -t1.",
        f"Command: `bench/fleet.sh` (URLS={URLS}, DURATION={DURATION}, FILL={FILL}, WALK={WALK}).",
        "",
        "## Origin requests per distinct URL",
        "",
        f"{per_url['urls']} URLs, each asked of all three instances at once ({per_url['requests']} requests, 48 in flight):",
        f"**{per_url['origin']} origin requests = {per_url['per_url']:.3f} per URL**, {per_url['errors']} errors.",
        "",
        "## Second-tier hit against first-tier hit (instance A, 64 connections)",
        "",
        "| | req/s | p50 ms | p99 ms | CPU µs/req (A) |",
        "|---|---:|---:|---:|---:|",
        f"| first-tier hit (memory) | {f['rps']:.0f} | {f['p50']:.2f} | {f['p99']:.2f} | {f['cpu_us']:.1f} |",
        f"| second-tier hit (Redis, promoted) | {s['rps']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} | {s['cpu_us']:.1f} |",
        "",
        f"Second-tier hits: {s['rps'] / f['rps']:.2f}x the first tier's throughput; B filled {tier['filled']} URLs in {FILL} s, "
        f"A walked {s['requests']} in {WALK} s (each one new to A: {s['fresh']}).",
        "",
        "## Redis stopped (SIGSTOP), cold misses on A (4 connections)",
        "",
        "| | req/s | p50 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
        f"| Redis up | {up['rps']:.0f} | {up['p50']:.2f} | {up['p99']:.2f} | {up['max']:.1f} | {up['errors']} |",
        f"| Redis stopped | {down['rps']:.0f} | {down['p50']:.2f} | {down['p99']:.2f} | {down['max']:.1f} | {down['errors']} |",
        f"| first-tier hits, Redis stopped (64 conn.) | {hits['rps']:.0f} | {hits['p50']:.2f} | {hits['p99']:.2f} | {hits['max']:.1f} | {hits['errors']} |",
        "",
        f"Added latency per cold miss while Redis is stopped: p50 {down['p50'] - up['p50']:+.2f} ms, "
        f"p99 {down['p99'] - up['p99']:+.2f} ms (the breaker opens after 3 timeouts of 20 ms; then the tier is skipped).",
        "",
    ]
    summary = (f"origin/URL {per_url['per_url']:.3f}; 2nd-tier hit {s['rps']:.0f} req/s p99 {s['p99']:.2f} ms "
               f"vs 1st {f['rps']:.0f} p99 {f['p99']:.2f}; Redis stopped: p50 {down['p50'] - up['p50']:+.2f} ms, "
               f"errors {down['errors']}")
    return "\n".join(lines), summary


def main():
    if (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins instance A and the load to two different cores")
    with tempfile.TemporaryDirectory(prefix="caching-proxy-fleet-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            fleet.start()
            per_url = origin_requests_per_url(fleet)
            tier = tiers(fleet)
            stopped = redis_stopped(fleet)
        finally:
            fleet.stop()
    text, summary = report(per_url, tier, stopped)
    out = ROOT / "bench" / "results" / f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d-%H%M}-fleet.md"
    out.write_text(text)
    print(text)
    print(f"report: {out.relative_to(ROOT)}")
    print(summary)


if __name__ == "__main__":
    main()
