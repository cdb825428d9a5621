#!/usr/bin/env python3
"""Origins of several servers under a miss-heavy load while one of them
dies: three origin servers (static nginx, one process each, no access
log), caching-proxy with `servers = [...]` and active checks against nginx
with an `upstream` of the same three (`max_fails=3 fail_timeout=10s`,
`proxy_next_upstream error timeout`). Every request is a new URL (a cache
miss that is stored). A third of the way into each run server 2 is killed
(SIGKILL), two thirds in it is started again; the run reports what the
clients saw (errors: socket errors and non-2xx answers, target 0),
throughput, p99, the proxy's CPU time per request, and the requests each
server received.

The proxy under test alone on core 1; wrk and the origins on core 0.
Run it through bench/servers.sh.
"""

import datetime
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # noqa: E402  (wrk and CPU helpers)
import run  # noqa: E402  (nginx config, pinning, readiness)

DURATION = int(os.environ.get("DURATION", "12"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
KILL = os.environ.get("KILL", "1") != "0"  # KILL=0: the same runs with no server killed
CONNECTIONS = 64
SERVER_PORTS = [18140, 18141, 18142]
PORTS = {"caching-proxy": 18145, "nginx": 18146}
ADMIN_PORT = 18147


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and every process under it."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += fleet.cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def origin_conf(work: Path, index: int) -> Path:
    port = SERVER_PORTS[index]
    server = f"""
        listen 127.0.0.1:{port};
        access_log off;
        location = /healthz {{ return 200 "ok"; }}
        location /u/ {{ add_header Cache-Control "public, max-age=3600"; add_header X-Server "{index}"; return 200 "{'x' * 1024}"; }}"""
    conf = run.nginx_conf(work, f"server{index}", server)
    # One process, so that killing it frees the port at once.
    conf.write_text(conf.read_text().replace("worker_processes 1;", "master_process off;\nworker_processes 1;"))
    return conf


def start_server(work: Path, index: int):
    proc = run.start(["nginx", "-c", origin_conf(work, index)], run.LOAD_CORE)
    run.wait_ready(SERVER_PORTS[index], "/healthz")
    return proc


def start_target(work: Path, target: str, cache_dir: Path):
    port = PORTS[target]
    if target == "caching-proxy":
        servers = ", ".join(f'"http://127.0.0.1:{p}"' for p in SERVER_PORTS)
        config = work / "proxy.toml"
        config.write_text(f"""
[[listeners]]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{ADMIN_PORT}"
[cache]
max_size = "1GiB"
file = "{work}/cache.json"
[[origins]]
name = "pool"
servers = [{servers}]
retries = 2
[origins.health]
path = "/healthz"
interval = "1s"
timeout = "500ms"
fall = 2
rise = 2
[[routes]]
origin = "pool"
""")
        log = open(work / "caching-proxy.log", "ab")
        proc = subprocess.Popen(["taskset", "-c", run.PROXY_CORE, str(run.BIN), "--config", str(config)],
                                stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info"})
    else:
        for f in cache_dir.iterdir():
            subprocess.run(["rm", "-rf", str(f)], check=True)
        upstream = " ".join(f"server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;" for p in SERVER_PORTS)
        server = f"""
        listen 127.0.0.1:{port};
        access_log {work}/nginx.access.log;
        location / {{
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_cache c;
            add_header X-Cache $upstream_cache_status;
        }}"""
        extra = f"""
    proxy_cache_path {cache_dir} levels=1:2 keys_zone=c:64m max_size=4g inactive=1h use_temp_path=off;
    upstream pool {{ {upstream} keepalive 64; }}"""
        proc = run.start(["nginx", "-c", run.nginx_conf(work, "nginx", server, extra)], run.PROXY_CORE)
    run.wait_ready(port, "/u/ready")
    return proc


def one_run(work: Path, target: str, round_no: int, servers: list, cache_dir: Path):
    proc = start_target(work, target, cache_dir)
    script = fleet.walk_script(work, f"{target}-{round_no}", f"{target}-{round_no}-")
    events = []

    def kill_and_restart():
        time.sleep(DURATION / 3)
        servers[2].send_signal(signal.SIGKILL)
        servers[2].wait()
        events.append(("killed", time.monotonic()))
        time.sleep(DURATION / 3)
        servers[2] = start_server(work, 2)
        events.append(("restarted", time.monotonic()))

    chaos = threading.Thread(target=kill_and_restart if KILL else lambda: events.extend([("killed", 0), ("restarted", 0)]))
    cpu_before = tree_cpu_seconds(proc.pid)
    chaos.start()
    result = fleet.wrk(PORTS[target], script, CONNECTIONS, DURATION)
    chaos.join()
    if [name for name, _ in events] != ["killed", "restarted"]:
        raise SystemExit(f"server 2 was not killed and restarted during the run: {events}")
    result["cpu_us"] = (tree_cpu_seconds(proc.pid) - cpu_before) / max(result["requests"], 1) * 1e6
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return result


def main():
    work = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-servers-nginx-", dir="/dev/shm"))
    (work / "www").mkdir()
    servers = [start_server(work, i) for i in range(3)]
    results = {"caching-proxy": [], "nginx": []}
    try:
        for round_no in range(ROUNDS):
            for target in ("caching-proxy", "nginx"):
                results[target].append(one_run(work, target, round_no, servers, cache_dir))
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(cache_dir)], check=False)
    report(results)


def report(results):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    med = run.median
    title = "one of three killed and restarted mid-run" if KILL else "the baseline, no server killed"
    lines = [f"# Origin servers: {title} ({stamp} UTC)", "",
             f"`bench/servers.sh`: {ROUNDS} rounds x {DURATION} s per target, interleaved; wrk -c{CONNECTIONS}, "
             "a new URL per request (every request a stored miss); server 2 killed (SIGKILL) at 1/3 of the run, "
             f"started again at 2/3{'' if KILL else ' (not this time: KILL=0, the baseline)'}. caching-proxy: `retries = 2`, checks every 1 s (fall 2, rise 2); nginx "
             f"{run.nginx_version()}: `max_fails=3 fail_timeout=10s`, `proxy_next_upstream error timeout`, "
             "proxy_cache on tmpfs. Proxy on core 1, wrk and the origins on core 0.", "",
             "| target | client errors (per round) | req/s (median) | p99 ms | max ms | CPU per request |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for target, runs in results.items():
        errors = ", ".join(str(r["errors"]) for r in runs)
        lines.append(f"| {target} | {errors} | {med([r['rps'] for r in runs]):.0f} | "
                     f"{med([r['p99'] for r in runs]):.2f} | {med([r['max'] for r in runs]):.1f} | "
                     f"{med([r['cpu_us'] for r in runs]):.0f} us |")
    cp, ng = results["caching-proxy"], results["nginx"]
    ratio = med([a["rps"] / b["rps"] for a, b in zip(cp, ng) if b["rps"]])
    lines += ["", f"caching-proxy {ratio:.2f}x nginx in requests per second; "
              f"client errors {sum(r['errors'] for r in cp)} against nginx's {sum(r['errors'] for r in ng)}."]
    text = "\n".join(lines) + "\n"
    out = run.ROOT / "bench" / "results" / f"{stamp}-servers.md"
    out.write_text(text)
    print(text)
    print(f"written to {out.relative_to(run.ROOT)}")


if __name__ == "__main__":
    main()
