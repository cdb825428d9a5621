"""A cold start on a 1 GiB snapshot: caching-proxy fills 16,384 objects of
64 KiB, stops (its final snapshot written), and starts again on that
file. Measured: how long the final write took and how large the file is;
from the new process's start, when the first request was answered and
when the first hit was served; and hits per second over the first 10 s
(wrk on random objects of the snapshot, started as soon as the port
accepts), with the time the whole snapshot took to load, from its log."""

import http.client
import random
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from targets import LOAD_CORE, PORTS

OBJECTS = 16384  # x 64 KiB = 1 GiB of bodies
CACHE_MIB = 1400
WINDOW = 10.0

COUNTING = """
hits, others = 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
request = function() return wrk.format("GET", "/big/" .. math.random(0, %d)) end
response = function(status, headers, body)
  if headers["x-cache"] == "HIT" or headers["X-Cache"] == "HIT" then hits = hits + 1 else others = others + 1 end
end
done = function(summary, latency, requests)
  local h, o = 0, 0
  for _, t in ipairs(threads) do h = h + t:get("hits"); o = o + t:get("others") end
  io.write(string.format("counted hits %%d others %%d\\n", h, o))
end
""" % (OBJECTS - 1)


def fill(port):
    def batch(start):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(start, OBJECTS, 8):
            conn.request("GET", f"/big/{n}")
            conn.getresponse().read()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batch, range(8)))


def probe(port, began, deadline=60.0):
    """Requests random objects on one connection until one is a hit;
    returns (first answer, first hit) in seconds after `began`."""
    answered = None
    while time.monotonic() - began < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while time.monotonic() - began < deadline:
                conn.request("GET", f"/big/{random.randrange(OBJECTS)}")
                response = conn.getresponse()
                response.read()
                answered = answered or time.monotonic() - began
                if response.getheader("x-cache") == "HIT":
                    return answered, time.monotonic() - began
        except OSError:
            time.sleep(0.005)
    return answered, None


def run(bench):
    target = "caching-proxy"
    port = PORTS[target]
    bench.stop(target)
    bench.file(target, ".cache.json").unlink(missing_ok=True)
    bench.start(target, cache_size=CACHE_MIB)
    fill(port)
    stopping = time.monotonic()
    bench.stop(target)
    written_s = time.monotonic() - stopping
    snapshot = bench.file(target, ".cache.json")
    size = snapshot.stat().st_size
    log = bench.file(target, ".log")
    log_offset = log.stat().st_size

    script = bench.work / "cold.lua"
    script.write_text(COUNTING)
    began = time.monotonic()
    bench.start(target, cache_size=CACHE_MIB, wait=False)
    answered, first_hit = probe(port, began)
    left = max(1.0, WINDOW - (time.monotonic() - began))
    out = subprocess.run(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c16", f"-d{left:.0f}s", "-s", str(script),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    counted = re.search(r"counted hits (\d+) others (\d+)", out)
    hits, others = (int(counted.group(1)), int(counted.group(2))) if counted else (0, 0)
    window = time.monotonic() - began
    loaded = None
    deadline = time.monotonic() + 120
    while loaded is None and time.monotonic() < deadline:
        text = log.read_bytes()[log_offset:].decode(errors="replace")
        m = re.search(r"snapshot loaded.*?entries=(\d+).*?elapsed_ms=(\d+)", text)
        if m:
            loaded = (int(m.group(1)), int(m.group(2)))
        else:
            time.sleep(0.2)
    bench.stop(target)
    return {
        "snapshot": f"{OBJECTS} x 64 KiB, file {size / 2**30:.2f} GiB, final write at stop {written_s:.1f} s",
        "first answer after start": f"{answered:.2f} s" if answered else "none",
        "first hit after start": f"{first_hit:.2f} s" if first_hit else "none in 60 s",
        "hits in the first 10 s": f"{hits} ({hits / window:.0f} per second; {others} other answers, "
                                  f"misses of objects not loaded yet)",
        "whole snapshot loaded": (f"in {loaded[1] / 1000:.1f} s, {loaded[0]} entries from the file (the others "
                                  f"had been fetched by the traffic meanwhile, and a fill is never replaced by "
                                  f"the snapshot's older copy)") if loaded else "not seen in log",
    }
