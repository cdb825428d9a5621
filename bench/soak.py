#!/usr/bin/env python3
"""Soak: caching-proxy under saturating mixed traffic with faults, purges
and reloads, for DURATION seconds (default 600). Passes when no response
had a wrong body and RSS and open file descriptors stayed flat.

Traffic (wrk, one connection per thread so that each response can be
checked against the request it answers): hot hits, cold misses (which
churn the cache past its bound), Vary variants, no-store passes, and a
faulty origin that stalls mid-body, resets mid-body, sends ambiguous
framing or answers slowly. Meanwhile: a prefix purge every 3 s, a config
reload every 7 s (every fourth one invalid and refused). Every 200
response's body must be the one its URL (and Accept-Encoding) gives.

Writes bench/results/<date>-soak.md. Run it through bench/soak.sh.
"""

import asyncio
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, LOAD_CORE, PROXY_CORE, ROOT, nginx_conf, start, wait_ready  # noqa: E402

DURATION = int(os.environ.get("DURATION", "600"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
GOOD_PORT, FAULTY_PORT, PROXY_PORT, ADMIN_PORT = 18140, 18141, 18142, 18143
SAMPLE_EVERY = 5

WRK_SCRIPT = r"""
local counter, last, last_ae = 0, nil, nil
-- Globals: done() reads them from each thread with thread:get().
checked, wrong, first_wrong, carried = 0, 0, "", 0
local aes = {"gzip", "gzip, deflate, br", "br", "identity"}
local faults = {"ok", "ok", "ok", "slow", "reset", "ambiguous", "stall"}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):sub(8), 16) or 0))
end

function request()
  counter = counter + 1
  local r = math.random(1000)
  local headers = nil
  last_ae = nil
  if r <= 600 then
    last = "/hot/" .. math.random(300)
  elseif r <= 800 then
    last = "/cold/" .. tostring({}):sub(8) .. "-" .. counter
  elseif r <= 900 then
    last = "/vary/" .. math.random(100)
    last_ae = aes[math.random(#aes)]
    headers = { ["Accept-Encoding"] = last_ae }
  elseif r <= 980 then
    last = "/nostore/" .. math.random(100)
  else
    last = "/faulty/" .. faults[math.random(#faults)] .. "/" .. math.random(50)
  end
  return wrk.format("GET", last, headers)
end

function response(status, headers, body)
  if status ~= 200 then return end
  checked = checked + 1
  local expected = last
  if last_ae then expected = last .. " " .. last_ae end
  if body == expected then return end
  -- wrk keeps the part of a body cut off mid-way (the proxy closed the
  -- connection) and prepends it to the next response's body, which came
  -- on a new connection: a carried-over stall or reset, not a wrong body.
  local prefix = body:sub(1, #body - #expected)
  local rest = prefix
  while true do
    local _, stop = rest:find("^/faulty/%a+/%d+")
    if not stop then break end
    rest = rest:sub(stop + 1)
  end
  if body:sub(-#expected) == expected and #prefix > 0 and rest == "" then
    carried = carried + 1
    return
  end
  wrong = wrong + 1
  if first_wrong == "" then first_wrong = last .. " got " .. body:sub(1, 80) end
end

function done(summary, latency, requests)
  local c, w, k, first = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    c = c + t:get("checked")
    w = w + t:get("wrong")
    k = k + t:get("carried")
    if first == "" then first = t:get("first_wrong") end
  end
  io.write(string.format("SOAK checked=%d wrong=%d carried=%d first=%s\n", c, w, k, first))
end
"""


class FaultyOrigin:
    """An origin on its own thread: /faulty/ok/* and /slow/* answer their
    path (slow after 150 ms); stall sends half the body and stops; reset
    sends half and closes; ambiguous frames by Content-Length and
    Transfer-Encoding at once."""

    def __init__(self, port):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()
        self.ready.wait()

    def run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self.serve, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_until_complete(server.serve_forever())

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                kind = path.split(b"/")[2] if path.count(b"/") >= 3 else b"ok"
                body = path
                if kind == b"slow":
                    await asyncio.sleep(0.15)
                if kind in (b"ok", b"slow"):
                    writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=30\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                    await writer.drain()
                    continue
                if kind == b"ambiguous":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), len(body), body))
                elif kind == b"reset":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body) * 2, body))
                elif kind == b"stall":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body) * 2, body))
                    await writer.drain()
                    await asyncio.sleep(5)
                await writer.drain()
                break
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()


def config(work: Path, ttl: int, valid: bool = True) -> str:
    if not valid:
        return "[[listeners]]\naddress = \"127.0.0.1:%d\"\n[[routes]\n" % PROXY_PORT
    return f"""
[[listeners]]
address = "127.0.0.1:{PROXY_PORT}"

[admin]
address = "127.0.0.1:{ADMIN_PORT}"

[cache]
file = "cache.json"
max_size = "8MiB"
ttl = {ttl}
write_delay = "2s"

[[origins]]
name = "good"
url = "http://127.0.0.1:{GOOD_PORT}"

[[origins]]
name = "faulty"
url = "http://127.0.0.1:{FAULTY_PORT}"
timeout = "2s"
read_timeout = "200ms"

[[routes]]
path_prefix = "/faulty/"
origin = "faulty"

[[routes]]
origin = "good"
"""


def admin(method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=30)
    conn.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
    response = conn.getresponse()
    return response.status, response.read()


def rss_kb(pid):
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    with tempfile.TemporaryDirectory(prefix="caching-proxy-soak-") as tmp:
        work = Path(tmp)
        server = f"""
        listen 127.0.0.1:{GOOD_PORT};
        access_log off;
        default_type text/plain;
        location /hot/ {{ add_header Cache-Control "public, max-age=3600"; return 200 "$request_uri"; }}
        location /cold/ {{ add_header Cache-Control "public, max-age=3600"; return 200 "$request_uri"; }}
        location /vary/ {{ add_header Cache-Control "public, max-age=60"; add_header Vary Accept-Encoding; return 200 "$request_uri $http_accept_encoding"; }}
        location /nostore/ {{ add_header Cache-Control "no-store"; return 200 "$request_uri"; }}
        location = /ready {{ add_header Cache-Control "no-store"; return 200 "ok"; }}
"""
        origin = start(["nginx", "-c", nginx_conf(work, "origin", server)], LOAD_CORE)
        FaultyOrigin(FAULTY_PORT)
        conf = work / "proxy.toml"
        conf.write_text(config(work, 300))
        log = open(work / "proxy.log", "wb")
        proxy = subprocess.Popen(["taskset", "-c", PROXY_CORE, str(BIN), "--config", str(conf)],
                                 stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
        try:
            wait_ready(GOOD_PORT, "/ready")
            wait_ready(PROXY_PORT, "/ready")
            script = work / "soak.lua"
            script.write_text(WRK_SCRIPT)
            load = subprocess.Popen(["taskset", "-c", LOAD_CORE, "wrk", f"-t{CONNECTIONS}", f"-c{CONNECTIONS}",
                                     f"-d{DURATION}s", "--timeout", "5s", "-s", str(script),
                                     f"http://127.0.0.1:{PROXY_PORT}/"], stdout=subprocess.PIPE, text=True)
            samples, purges, reloads = [], 0, 0
            started, cpu_before = time.monotonic(), cpu_seconds(proxy.pid)
            next_sample = next_purge = next_reload = started
            while load.poll() is None:
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - started, rss_kb(proxy.pid), fds(proxy.pid)))
                    next_sample += SAMPLE_EVERY
                if now >= next_purge:
                    status, _ = admin("POST", "/purge", json.dumps({"prefix": f"http://127.0.0.1:{PROXY_PORT}/cold/"}))
                    purges += status == 200
                    next_purge += 3
                if now >= next_reload:
                    reloads += 1
                    conf.write_text(config(work, 300 + 300 * (reloads % 2), valid=reloads % 4 != 0))
                    next_reload += 7
                time.sleep(0.2)
            out = load.stdout.read()
            busy = (cpu_seconds(proxy.pid) - cpu_before) / (time.monotonic() - started)
            stats = json.loads(admin("GET", "/stats")[1])
            alive = proxy.poll() is None
        finally:
            proxy.send_signal(signal.SIGTERM)
            code = proxy.wait(timeout=60)
            origin.terminate()
            origin.wait()
        proxy_log = (work / "proxy.log").read_text(errors="replace")
    report(out, samples, purges, reloads, stats, alive, code, proxy_log, busy)


def report(out, samples, purges, reloads, stats, alive, code, proxy_log, busy):
    soak = re.search(r"SOAK checked=(\d+) wrong=(\d+) carried=(\d+) first=(.*)", out)
    checked, wrong, carried, first = int(soak.group(1)), int(soak.group(2)), int(soak.group(3)), soak.group(4)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    warm = [s for s in samples if s[0] >= 60] or samples
    rss_first, rss_last, rss_max = warm[0][1] / 1024, warm[-1][1] / 1024, max(s[1] for s in warm) / 1024
    fd_first, fd_last, fd_max = warm[0][2], warm[-1][2], max(s[2] for s in warm)
    rss_flat = rss_last <= rss_first * 1.10 + 5
    fds_flat = fd_last <= fd_first + 16
    ok = wrong == 0 and alive and code == 0 and rss_flat and fds_flat
    now = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    panics = proxy_log.count("panicked")
    lines = [
        f"# Soak {now:%Y-%m-%d %H:%M} UTC (commit {commit}): {'passed' if ok else 'FAILED'}\n",
        f"{DURATION} s of wrk -t{CONNECTIONS} -c{CONNECTIONS} (one connection per thread, so each response is checked "
        f"against its request) on core {LOAD_CORE} with both origins; caching-proxy alone on core {PROXY_CORE}, "
        "an 8 MiB cache (the misses churn it), a prefix purge every 3 s, a reload every 7 s (every fourth invalid). `bench/soak.sh`.\n",
        "| figure | value |", "| --- | ---: |",
        f"| requests | {requests} ({rps:.0f} req/s; the proxy's core {busy * 100:.0f}% busy) |",
        f"| 200 responses checked | {checked} |",
        f"| wrong bodies | **{wrong}** {first} |",
        f"| non-2xx answers (faulty origin: 502/504) | {non2xx.group(1) if non2xx else 0} |",
        f"| cut responses (socket read errors: stalls and resets mid-body) | {errors.group(2) if errors else 0} "
        f"({carried} carried over by wrk into the next body, on a new connection) |",
        f"| purges / reloads (ok, refused) | {purges} / {stats['config']['reloads_ok']}, {stats['config']['reloads_failed']} |",
        f"| cache at the end | {stats['cache']['entries']} entries, {stats['cache']['bytes'] / 1e6:.1f} MB, "
        f"{stats['cache']['evictions']} evictions |",
        f"| RSS after 1 min / at the end / max | {rss_first:.1f} / {rss_last:.1f} / {rss_max:.1f} MB "
        f"({'flat' if rss_flat else 'GROWING'}) |",
        f"| open fds after 1 min / at the end / max | {fd_first} / {fd_last} / {fd_max} ({'flat' if fds_flat else 'GROWING'}) |",
        f"| process | {'alive' if alive else 'DIED'}, SIGTERM exit {code}, {panics} panics logged |",
        "\nRSS and fds every 30 s (seconds, MB, fds):\n",
        "```",
        *[f"{t:6.0f} {r / 1024:7.1f} {f:5d}" for t, r, f in samples if int(t) % 30 < SAMPLE_EVERY],
        "```",
    ]
    out_file = ROOT / "bench" / "results" / f"{now:%Y-%m-%d-%H%M}-soak.md"
    out_file.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[3:14]))
    print(f"\nreport: {out_file.relative_to(ROOT)}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
