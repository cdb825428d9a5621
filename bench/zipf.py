#!/usr/bin/env python3
"""Everyday traffic on a page cache: a Zipf-distributed (s = 1) workload
over 10,000 URLs of a 16 KiB HTML page the origin sends uncompressed, with
the Accept-Encoding headers of a mix of browsers and tools and tracking
parameters (utm_*, fbclid, gclid) on 40 % of the links. It reports the hit
ratio (1 - origin requests / client requests), the bytes sent to clients
per request (wrk's bytes read, headers included), req/s and the proxy's CPU
time per request for:

- caching-proxy, the route keyed without tracking parameters
  (`key.query = { drop = [...] }`, `key.sort_query = true`) and `compress`
  on (the default);
- caching-proxy with the default key (the query as sent), to show what the
  key rule buys;
- nginx `proxy_cache` as its users run it: the default `proxy_cache_key`,
  `gzip on` (level 5, the usual text types, `gzip_proxied any`);
- Varnish with the default VCL and `beresp.do_gzip` for text, as its
  documentation suggests.

Each target starts cold; runs are interleaved. The proxy alone on core 1;
wrk and the origin on core 0. Run it through bench/zipf.sh.
"""

import datetime
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet  # noqa: E402  (CPU time)
import run  # noqa: E402  (nginx config, pinning, readiness)
import servers  # noqa: E402  (CPU time of a process tree)

DURATION = int(os.environ.get("DURATION", "15"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
URLS = 10_000
CONNECTIONS = 32
ORIGIN_PORT = 18150
PORTS = {"caching-proxy": 18151, "caching-proxy, default key": 18152, "nginx": 18153, "varnish": 18154}

# (Accept-Encoding, share of requests in percent): Chrome and Edge, Firefox,
# Safari, older browsers, crawlers, curl and scripts that send none.
ENCODINGS = [
    ("gzip, deflate, br, zstd", 45),
    ("gzip, deflate, br", 25),
    ("br;q=1.0, gzip;q=0.8, *;q=0.1", 5),
    ("gzip, deflate", 10),
    ("gzip", 5),
    ("identity", 2),
    ("", 8),
]

GZIP_TYPES = ("text/plain text/css application/json application/javascript text/xml "
              "application/xml application/rss+xml image/svg+xml application/wasm")


def page() -> bytes:
    """16 KiB of markup with varied words, so it compresses as pages do."""
    rng = random.Random(7)
    words = ["catalogue", "product", "price", "basket", "delivery", "review", "colour", "size",
             "stock", "offer", "brand", "garden", "kitchen", "winter", "summer", "classic"]
    lines = ["<!doctype html><html><head><title>Shop</title></head><body><ul>"]
    while sum(map(len, lines)) < 16 * 1024:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        lines.append(f'<li class="item" data-id="{rng.randint(1, 99999)}"><a href="/p/{rng.randint(1, URLS)}">{text}</a></li>')
    return ("\n".join(lines) + "</ul></body></html>\n").encode()[: 16 * 1024]


def script(work: Path) -> Path:
    """A wrk script: Zipf-chosen URL, a browser's Accept-Encoding, and
    tracking parameters on 40 % of the requests."""
    encodings = []
    for value, share in ENCODINGS:
        encodings += [value] * share
    lua_encodings = ", ".join(f'"{value}"' for value in encodings)
    path = work / "zipf.lua"
    path.write_text(f"""
local n = {URLS}
local cdf = {{}}
local total = 0
for k = 1, n do total = total + 1 / k; cdf[k] = total end
for k = 1, n do cdf[k] = cdf[k] / total end
local encodings = {{ {lua_encodings} }}
math.randomseed(os.time())

local function zipf()
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

request = function()
  local path = "/p/" .. zipf()
  local r = math.random(100)
  if r <= 20 then
    path = path .. "?utm_source=news&utm_medium=mail&utm_campaign=c" .. math.random(50)
  elseif r <= 35 then
    path = path .. "?fbclid=IwAR" .. math.random(1000000)
  elseif r <= 40 then
    path = path .. "?gclid=Cj0" .. math.random(1000000)
  end
  local headers = {{}}
  local ae = encodings[math.random(#encodings)]
  if ae ~= "" then headers["Accept-Encoding"] = ae end
  return wrk.format("GET", path, headers)
end
""")
    return path


def start_origin(work: Path):
    www = work / "www"
    www.mkdir()
    (www / "page.html").write_bytes(page())
    server = f"""
        listen 127.0.0.1:{ORIGIN_PORT};
        root {www};
        access_log {work}/origin.access.log;
        location /p/ {{ default_type text/html; add_header Cache-Control "public, max-age=3600"; try_files /page.html =404; }}"""
    proc = run.start(["nginx", "-c", run.nginx_conf(work, "origin", server)], run.LOAD_CORE)
    run.wait_ready(ORIGIN_PORT, "/p/1")
    return proc


def start_target(work: Path, target: str, nginx_cache: Path):
    port = PORTS[target]
    origin = f"http://127.0.0.1:{ORIGIN_PORT}"
    if target.startswith("caching-proxy"):
        key = "" if target.endswith("default key") else (
            'key.query = { drop = ["utm_*", "fbclid", "gclid"] }\nkey.sort_query = true\n')
        config = work / f"proxy-{port}.toml"
        (work / f"cache-{port}.json").unlink(missing_ok=True)
        config.write_text(f"""
[[listeners]]
address = "127.0.0.1:{port}"
[cache]
max_size = "1GiB"
file = "{work}/cache-{port}.json"
[[origins]]
name = "shop"
url = "{origin}"
[[routes]]
origin = "shop"
{key}""")
        log = open(work / "caching-proxy.log", "ab")
        proc = subprocess.Popen(["taskset", "-c", run.PROXY_CORE, str(run.BIN), "--config", str(config)],
                                stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info"})
    elif target == "nginx":
        for f in nginx_cache.iterdir():
            subprocess.run(["rm", "-rf", str(f)], check=True)
        gzip = f"""
        gzip on;
        gzip_comp_level 5;
        gzip_proxied any;
        gzip_vary on;
        gzip_types {GZIP_TYPES};"""
        conf = run.nginx_cache_conf(work, port, ORIGIN_PORT, nginx_cache, gzip)
        proc = run.start(["nginx", "-c", conf], run.PROXY_CORE)
    else:
        vcl = work / "default.vcl"
        vcl.write_text(f"""vcl 4.1;
backend default {{ .host = "127.0.0.1"; .port = "{ORIGIN_PORT}"; }}
sub vcl_backend_response {{
    if (beresp.http.content-type ~ "text|json|javascript|xml|svg") {{ set beresp.do_gzip = true; }}
}}
""")
        workdir = work / "varnish"
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
        proc = run.start(["varnishd", "-F", "-j", "none", "-a", f"127.0.0.1:{port}", "-f", vcl,
                          "-s", "malloc,2g", "-n", workdir], run.PROXY_CORE)
    run.wait_ready(port, "/p/ready")
    return proc


def wrk(port: int, lua: Path) -> dict:
    cmd = ["taskset", "-c", run.LOAD_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency",
           "-s", str(lua), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    result["p99"] = run.to_ms(*m.groups())
    read = re.search(r"requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", out)
    result["bytes"] = float(read.group(1)) * {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[read.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = int(non2xx.group(1)) if non2xx else 0
    return result


def one_run(work: Path, target: str, lua: Path, nginx_cache: Path) -> dict:
    proc = start_target(work, target, nginx_cache)
    origin_before = run.origin_requests(work / "origin.access.log")
    cpu_before = servers.tree_cpu_seconds(proc.pid)
    result = wrk(PORTS[target], lua)
    result["cpu_us"] = (servers.tree_cpu_seconds(proc.pid) - cpu_before) / max(result["requests"], 1) * 1e6
    result["origin"] = run.origin_requests(work / "origin.access.log") - origin_before
    proc.terminate()
    proc.wait(timeout=30)
    return result


def main():
    work = Path(tempfile.mkdtemp(prefix="bench-zipf-"))
    os.chmod(work, 0o755)
    nginx_cache = Path(tempfile.mkdtemp(prefix="bench-zipf-nginx-", dir="/dev/shm"))
    origin = start_origin(work)
    lua = script(work)
    results = {target: [] for target in PORTS}
    try:
        for _ in range(ROUNDS):
            for target in PORTS:
                results[target].append(one_run(work, target, lua, nginx_cache))
    finally:
        origin.terminate()
        subprocess.run(["rm", "-rf", str(nginx_cache)], check=False)
    report(results, len(page()))


def report(results: dict, page_bytes: int):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    med = run.median
    lines = [f"# Zipf workload: hit ratio and bytes to clients ({stamp} UTC)", "",
             f"`bench/zipf.sh`: {ROUNDS} rounds x {DURATION} s per target, interleaved, each from a cold cache; "
             f"wrk -c{CONNECTIONS}; Zipf (s = 1) over {URLS} URLs of one {page_bytes // 1024} KiB HTML page the origin "
             "sends uncompressed (`max-age=3600`); Accept-Encoding from a browser mix (45 % `gzip, deflate, br, zstd`, "
             "25 % `gzip, deflate, br`, 5 % weighted br, 15 % gzip only, 10 % identity or none); 40 % of the links "
             "carry utm_*, fbclid or gclid. nginx "
             f"{run.nginx_version()} `proxy_cache` (default key) with `gzip on` level 5; Varnish {run.varnish_version()} "
             "default VCL with `do_gzip` for text. Proxy on core 1, wrk and the origin on core 0.", "",
             "| target | hit ratio | bytes to clients per request | req/s | p99 ms | CPU per request |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for target, runs in results.items():
        hit = med([1 - r["origin"] / max(r["requests"], 1) for r in runs])
        per_request = med([r["bytes"] / max(r["requests"], 1) for r in runs])
        errors = sum(r["errors"] for r in runs)
        note = f" ({errors} non-2xx)" if errors else ""
        lines.append(f"| {target}{note} | {hit:.1%} | {per_request:,.0f} B | {med([r['rps'] for r in runs]):,.0f} | "
                     f"{med([r['p99'] for r in runs]):.2f} | {med([r['cpu_us'] for r in runs]):.0f} us |")
    text = "\n".join(lines) + "\n"
    out = run.ROOT / "bench" / "results" / f"{stamp}-zipf.md"
    out.write_text(text)
    print(text)
    print(f"written to {out.relative_to(run.ROOT)}")


if __name__ == "__main__":
    main()
