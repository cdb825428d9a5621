"""The load generators, pinned to the load core: wrk (HTTP/1.1, closed
loop: each connection sends its next request when the last is answered)
and h2load (HTTP/2 streams over TLS, or HTTP/1.1 at a fixed rate per
connection: an open loop, so that two targets are compared at the same
offered load). Each returns req/s, p50/p99 latency in ms, the requests
completed and the errors seen.
"""

import re
import statistics
import subprocess
import tempfile
from pathlib import Path

from measure import Sample


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(core, url, duration, connections=64, script=None):
    cmd = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(pct + r"%\s+([\d.]+)(us|ms|s)", out)
        result[key] = to_ms(*m.groups())
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return result


def h2load(core, url, duration, connections, streams=1, rate=None, h1=False):
    """h2load for `duration` seconds; `rate` is requests per second in all
    (spread over the connections), else as fast as answers come. The
    latency percentiles come from its per-request log."""
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        cmd = ["taskset", "-c", core, "h2load", "-c", str(connections), "-m", str(streams),
               "-D", str(duration), "--log-file", log.name]
        if h1:
            cmd.append("--h1")
        if rate:
            cmd += ["--rps", str(max(1, rate // connections))]
        out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
        return parse_h2load(out, Path(log.name))


def parse_h2load(out: str, log: Path):
    latencies, bad = [], 0
    for line in log.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 3:
            latencies.append(int(fields[2]) / 1000.0)
            bad += not fields[1].startswith(("2", "3"))
    done = re.search(r"(\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    finished = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    protocol = re.search(r"Application protocol: (\S+)", out)
    latencies.sort()
    return {
        "rps": float(finished.group(2)),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "requests": int(done.group(2)),
        "errors": int(done.group(3)) + int(done.group(4)) + bad,
        "protocol": protocol.group(1) if protocol else "?",
    }


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measured(pid, run):
    """Runs `run()` (a load function) and adds the CPU the process tree
    `pid` spent per request and each core's busy share."""
    sample = Sample(pid)
    result = run()
    result.update(sample.finish(result["requests"]))
    return result


def median(values):
    values = [v for v in values if v == v]  # without NaN
    return statistics.median(values) if values else float("nan")
