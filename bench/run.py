#!/usr/bin/env python3
"""Side-by-side benchmark: caching-proxy, nginx proxy_cache, Varnish, and a
static nginx ("direct", the ceiling of this machine).

Topology for 2 cores: wrk (-t1 -c64, keep-alive, closed loop) and the static
origin on core 0; the proxy under test alone on core 1. Every target runs in
the same invocation, interleaved over ROUNDS rounds (the order rotates each
round); the report gives medians and the median of per-round ratios, since
absolute figures on a shared machine move by up to 2x between minutes.

Run it through bench/run.sh, which installs what is missing and builds.
"""

import datetime
import http.client
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "caching-proxy"
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = 64
MEMORY_ENTRIES = int(os.environ.get("MEMORY_ENTRIES", "20000"))
LOAD_CORE, PROXY_CORE = "0", "1"
PORTS = {"origin": 18100, "caching-proxy": 18101, "nginx": 18102, "varnish": 18103, "direct": 18104}
ADMIN_PORT = 18105
TARGETS = ["caching-proxy", "nginx", "varnish", "direct"]
SCENARIOS = {
    # name: (path or None for the miss script, targets)
    "hit 1 KiB": ("/1k", TARGETS),
    "hit 64 KiB": ("/64k", TARGETS),
    "miss": (None, TARGETS[:3]),
    "no-store": ("/nostore", TARGETS[:3]),
}

STATIC_LOCATIONS = """
        location = /1k { add_header Cache-Control "public, max-age=3600"; }
        location = /64k { add_header Cache-Control "public, max-age=3600"; }
        location /u/ { add_header Cache-Control "public, max-age=3600"; try_files /1k =404; }
        location = /nostore { add_header Cache-Control "no-store"; try_files /1k =404; }
"""


def nginx_conf(work: Path, name: str, server: str, http_extra: str = "") -> Path:
    conf = work / f"{name}.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/octet-stream;
    sendfile off;
    keepalive_requests 1000000;
    {http_extra}
    server {{
{server}
    }}
}}
""")
    return conf


def nginx_cache_conf(work: Path, port: int, origin_port: int, cache_dir: Path, server_extra: str = "") -> Path:
    """nginx `proxy_cache` in front of the origin: upstream keepalive,
    HTTP/1.1 upstream, the access log on, the cache in `cache_dir`."""
    server = f"""
        listen 127.0.0.1:{port};
        access_log {work}/nginx.access.log;
{server_extra}
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache c;
            add_header X-Cache $upstream_cache_status;
        }}"""
    extra = f"""
    proxy_cache_path {cache_dir} levels=1:2 keys_zone=c:64m max_size=4g inactive=1h use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}"""
    return nginx_conf(work, "nginx", server, extra)


def start(args, core, **kw):
    return subprocess.Popen(["taskset", "-c", core, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def wait_ready(port, path="/1k", timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"nothing answers on port {port}")


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, script=None):
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", url]
    if script:
        cmd[5:5] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(pct + r"%\s+([\d.]+)(us|ms|s)", out)
        result[key] = to_ms(*m.groups())
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return result


def origin_requests(log: Path) -> int:
    try:
        with open(log, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def dir_bytes(path: Path) -> int:
    """Memory a directory on tmpfs really takes: allocated blocks, not sizes."""
    if not path.exists():
        return 0
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.procs = {}
        www = work / "www"
        www.mkdir()
        (www / "1k").write_bytes(os.urandom(1024))
        (www / "64k").write_bytes(os.urandom(65536))
        self.www = www
        self.origin_log = work / "origin.access.log"
        self.nginx_cache = Path(tempfile.mkdtemp(prefix="bench-nginx-cache-", dir="/dev/shm"))

    def start_origin(self):
        server = f"""
        listen 127.0.0.1:{PORTS['origin']};
        root {self.www};
        access_log {self.origin_log};
{STATIC_LOCATIONS}"""
        self.procs["origin"] = start(["nginx", "-c", nginx_conf(self.work, "origin", server)], LOAD_CORE)
        wait_ready(PORTS["origin"])

    def start(self, target):
        port = PORTS[target]
        if target == "caching-proxy":
            args = [BIN, "--port", port, "--origin", f"http://127.0.0.1:{PORTS['origin']}",
                    "--cache-file", self.work / "cache.json", "--admin", f"127.0.0.1:{ADMIN_PORT}"]
            log = open(self.work / "caching-proxy.log", "ab")
            proc = subprocess.Popen(["taskset", "-c", PROXY_CORE, *map(str, args)], stdout=log, stderr=log,
                                    env={**os.environ, "RUST_LOG": "info"})
        elif target == "nginx":
            for f in self.nginx_cache.iterdir():
                subprocess.run(["rm", "-rf", str(f)], check=True)
            conf = nginx_cache_conf(self.work, port, PORTS["origin"], self.nginx_cache)
            proc = start(["nginx", "-c", conf], PROXY_CORE)
        elif target == "varnish":
            workdir = self.work / "varnish"
            proc = start(["varnishd", "-F", "-j", "none", "-a", f"127.0.0.1:{port}", "-b", f"127.0.0.1:{PORTS['origin']}",
                          "-s", "malloc,2g", "-n", workdir], PROXY_CORE)
        else:
            server = f"""
        listen 127.0.0.1:{port};
        root {self.www};
        access_log {self.work}/direct.access.log;
{STATIC_LOCATIONS}"""
            proc = start(["nginx", "-c", nginx_conf(self.work, "direct", server)], PROXY_CORE)
        self.procs[target] = proc
        wait_ready(port, "/nostore")
        return proc

    def stop(self, target):
        proc = self.procs.pop(target, None)
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for target in list(self.procs):
            self.stop(target)
        subprocess.run(["rm", "-rf", str(self.nginx_cache)], check=False)


def run_rounds(bench: Bench):
    results = {name: {t: [] for t in targets} for name, (_, targets) in SCENARIOS.items()}
    miss_script = bench.work / "miss.lua"
    for r in range(ROUNDS):
        for i, (name, (path, targets)) in enumerate(SCENARIOS.items()):
            order = targets[(r + i) % len(targets):] + targets[:(r + i) % len(targets)]
            for target in order:
                port = PORTS[target]
                script = None
                url = f"http://127.0.0.1:{port}{path or '/'}"
                if path is None:
                    miss_script.write_text(
                        'local n = 0\nrequest = function()\n  n = n + 1\n'
                        f'  return wrk.format("GET", "/u/r{r}-{target}-" .. n)\nend\n')
                    script = miss_script
                elif target != "direct":
                    for _ in range(3):
                        get(port, path)  # warm: the hit scenarios measure hits
                before = origin_requests(bench.origin_log)
                result = wrk(url, script)
                result["origin_per_request"] = (origin_requests(bench.origin_log) - before) / max(result["requests"], 1)
                results[name][target].append(result)
                print(f"round {r + 1}/{ROUNDS} {name:<10} {target:<13} {result['rps']:>9.0f} req/s "
                      f"p50 {result['p50']:.2f} ms p99 {result['p99']:.2f} ms "
                      f"origin/req {result['origin_per_request']:.2f} errors {result['errors']}", flush=True)
    return results


def admin_stats():
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=5)
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
    """Waits until the write-behind has caught up with the miss rounds: no
    snapshot written for `quiet_for` seconds (longer than its pacing)."""
    deadline = time.monotonic() + timeout
    last, since = snapshot_writes(), time.monotonic()
    while time.monotonic() - since < quiet_for and time.monotonic() < deadline:
        time.sleep(1)
        now = snapshot_writes()
        if now != last:
            last, since = now, time.monotonic()


def during_snapshot(bench: Bench):
    """Hit 1 KiB on the cache the miss rounds filled, alone and while the
    snapshot of it is being written (`POST /snapshot` on the admin API starts
    one in the background, as the write-behind does). Interleaved over
    ROUNDS; the ratio shows what a snapshot write costs requests."""
    port = PORTS["caching-proxy"]
    url = f"http://127.0.0.1:{port}/1k"
    get(port, "/1k")
    entries = admin_stats()["cache"]["entries"]
    settle_snapshots()
    quiet, writing = [], []
    for r in range(ROUNDS):
        quiet.append(wrk(url)["rps"])
        before = snapshot_writes()
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=5)
        conn.request("POST", "/snapshot")
        if conn.getresponse().status != 202:
            raise SystemExit("POST /snapshot was refused")
        writing.append(wrk(url)["rps"])
        unfinished = snapshot_writes() == before
        await_snapshot(before)  # the next quiet run must be quiet
        print(f"round {r + 1}/{ROUNDS} snapshot   caching-proxy  quiet {quiet[-1]:.0f} req/s, "
              f"writing {writing[-1]:.0f} req/s (write {'still running' if unfinished else 'finished'} "
              f"at the end of the run)", flush=True)
    ratio = median([w / q for w, q in zip(writing, quiet)])
    return {"entries": entries, "quiet": median(quiet), "writing": median(writing), "ratio": ratio}


def memory(bench: Bench):
    per_entry = {}
    for target in TARGETS[:3]:
        bench.stop(target)
        if target == "caching-proxy":
            (bench.work / "cache.json").unlink(missing_ok=True)
        proc = bench.start(target)
        get(PORTS[target], "/1k")
        base = tree_rss_kb(proc.pid) * 1024 + (dir_bytes(bench.nginx_cache) if target == "nginx" else 0)
        conn = http.client.HTTPConnection("127.0.0.1", PORTS[target], timeout=10)
        for n in range(MEMORY_ENTRIES):
            conn.request("GET", f"/u/mem-{n}")
            conn.getresponse().read()
        if target == "caching-proxy":
            settle_snapshots(quiet_for=3.0)  # sample after the write-behind, not during it
        else:
            time.sleep(1)  # let the allocator and nginx's cache manager settle
        # Steady state: the lowest of samples over 6 s, so that buffers a
        # background task (snapshot, cache manager) holds for a moment do
        # not count as per-entry memory: caching-proxy's allocator returns
        # a snapshot write's buffers about 3 s after the write. The same
        # for every target.
        samples = []
        for _ in range(12):
            samples.append(tree_rss_kb(proc.pid) * 1024 + (dir_bytes(bench.nginx_cache) if target == "nginx" else 0))
            time.sleep(0.5)
        after = min(samples)
        per_entry[target] = (after - base) / MEMORY_ENTRIES
        print(f"memory {target:<13} {per_entry[target]:.0f} bytes per 1 KiB entry", flush=True)
    return per_entry


def startup(bench: Bench):
    bench.stop("caching-proxy")
    began = time.monotonic()
    bench.start("caching-proxy")
    return (time.monotonic() - began) * 1000


def median(values):
    return statistics.median(values) if values else float("nan")


def report(results, per_entry, startup_ms, snapshot_text, snapshot_load):
    lines, summary = [], []
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    lines.append(f"# Benchmark {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    lines.append(f"Machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}. "
                 f"wrk -t1 -c{CONNECTIONS} -d{DURATION}s and the origin on core {LOAD_CORE}; the proxy alone on core {PROXY_CORE}. "
                 f"{ROUNDS} rounds, interleaved. nginx {nginx_version()} (1 worker, proxy_cache on tmpfs, sendfile off, "
                 f"upstream keepalive, HTTP/1.1 upstream, access log on); Varnish {varnish_version()} (malloc storage, default "
                 f"parameters); caching-proxy with one worker thread, access log on.\n")
    for name, by_target in results.items():
        lines.append(f"\n## {name}\n")
        lines.append("| target | req/s (median) | p50 ms | p99 ms | errors | origin requests per request | ratio to nginx (median of rounds) |")
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        nginx = by_target["nginx"]
        for target, runs in by_target.items():
            ratios = [a["rps"] / b["rps"] for a, b in zip(runs, nginx) if b["rps"]]
            lines.append(f"| {target} | {median([x['rps'] for x in runs]):.0f} | {median([x['p50'] for x in runs]):.2f} | "
                         f"{median([x['p99'] for x in runs]):.2f} | {sum(x['errors'] for x in runs)} | "
                         f"{median([x['origin_per_request'] for x in runs]):.2f} | {median(ratios):.2f}x |")
        cp = by_target["caching-proxy"]
        ratio = median([a["rps"] / b["rps"] for a, b in zip(cp, nginx)])
        part = f"{name} {ratio:.2f}x nginx"
        if "direct" in by_target:
            part += f" ({median([a['rps'] / b['rps'] for a, b in zip(cp, by_target['direct'])]):.2f}x direct)"
        part += f", p99 {median([x['p99'] for x in cp]):.2f} vs {median([x['p99'] for x in nginx]):.2f} ms"
        summary.append(part)
    lines.append(f"\n## Memory per cached 1 KiB entry ({MEMORY_ENTRIES} entries)\n")
    lines.append("| target | bytes per entry | ratio to nginx |")
    lines.append("| --- | ---: | ---: |")
    for target, value in per_entry.items():
        lines.append(f"| {target} | {value:.0f} | {value / per_entry['nginx']:.2f}x |")
    summary.append(f"memory {per_entry['caching-proxy'] / 1024:.2f} KB/entry "
                   f"({per_entry['caching-proxy'] / per_entry['nginx']:.2f}x nginx)")
    lines.append(f"\n## Start-up and snapshot\n\nStart-up to the first answered request: {startup_ms:.0f} ms.\n")
    lines.append("```\n" + snapshot_text.strip() + "\n```\n")
    lines.append(f"Hit 1 KiB while a snapshot of {snapshot_load['entries']} entries is being written "
                 f"(`POST /snapshot`, lowest CPU priority): {snapshot_load['writing']:.0f} req/s against "
                 f"{snapshot_load['quiet']:.0f} with no write, {snapshot_load['ratio']:.2f}x (median of rounds).\n")
    summary.append(f"hits while writing a snapshot {snapshot_load['ratio']:.2f}x quiet")
    return "\n".join(lines) + "\n", "; ".join(summary)


def nginx_version():
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return out.strip().split("/")[-1]


def varnish_version():
    out = subprocess.run(["varnishd", "-V"], capture_output=True, text=True).stderr
    m = re.search(r"varnish-([\d.]+)", out)
    return m.group(1) if m else "?"


def main():
    if (os.cpu_count() or 1) < 2:
        sys.exit("this benchmark pins load and proxy to two different cores")
    snapshot_file = Path(os.environ.get("TMPDIR", "/tmp")) / "caching-proxy-snapshot-bench.txt"
    snapshot_text = snapshot_file.read_text() if snapshot_file.exists() else "(snapshot bench not run)"
    with tempfile.TemporaryDirectory(prefix="caching-proxy-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.start_origin()
            for target in TARGETS:
                bench.start(target)
            results = run_rounds(bench)
            snapshot_load = during_snapshot(bench)
            per_entry = memory(bench)
            startup_ms = startup(bench)
        finally:
            bench.stop_all()
            bench.stop("origin")
    text, summary = report(results, per_entry, startup_ms, snapshot_text, snapshot_load)
    out = ROOT / "bench" / "results" / f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d-%H%M}-{ROUNDS}x{DURATION}s.md"
    out.write_text(text)
    print(f"\nreport: {out.relative_to(ROOT)}")
    print(summary)


if __name__ == "__main__":
    main()
