"""The report of bench/run.py: a table per scenario (req/s, CPU per
request, latency, how busy each core was, ratios to nginx), the issue's
targets against what was measured, and the other figures (memory per
entry, snapshot, start-up, cold start)."""

import datetime
import os
import platform
from pathlib import Path

from load import median
from measure import saturated
from targets import LOAD_CORE, PROXY_CORE, nginx_version, varnish_version

# Scenario: (the ratio to nginx it must reach, or None for none).
TARGETS = {
    "hit 1 KiB": 1.7,
    "hit 64 KiB": 1.5,
    "miss": 1.5,
    "no-store": 1.1,
    "HTTPS hit 1 KiB": 1.5,
    "HTTP/2 hit 1 KiB": 1.5,
}


def baseline(targets):
    return next(t for t in targets if t.split("/")[0] == "nginx")


def ratios(runs, base):
    """Per-round req/s ratios from the rounds where neither load core was
    saturated, and per-round CPU ratios (base's CPU per request over the
    target's: above 1 means the target costs less)."""
    rps = [a["rps"] / b["rps"] for a, b in zip(runs, base)
           if b["rps"] and not saturated(a, LOAD_CORE) and not saturated(b, LOAD_CORE)]
    cpu = [b["cpu_us"] / a["cpu_us"] for a, b in zip(runs, base) if a["cpu_us"]]
    return median(rps), median(cpu), len(rps)


def scenario_table(name, by_target):
    base_name = baseline(by_target)
    base = by_target[base_name]
    lines = [f"\n## {name}\n",
             "| target | req/s | CPU per request (user + sys) | p50 ms | p99 ms | busy: load / proxy core "
             "| rounds load-bound | errors | origin req per req | req/s ratio to nginx | CPU ratio to nginx |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for target, runs in by_target.items():
        rps_ratio, cpu_ratio, counted = ratios(runs, base)
        bound = sum(saturated(r, LOAD_CORE) for r in runs)
        rps_text = f"{rps_ratio:.2f}x" if counted else "n/a (load-bound)"
        user, system = median([r["user_us"] for r in runs]), median([r["sys_us"] for r in runs])
        lines.append(
            f"| {target} | {median([r['rps'] for r in runs]):.0f} | {user + system:.1f} us ({user:.1f} + {system:.1f}) "
            f"| {median([r['p50'] for r in runs]):.2f} | {median([r['p99'] for r in runs]):.2f} "
            f"| {median([r['busy'].get(LOAD_CORE, 0) for r in runs]):.0%} / "
            f"{median([r['busy'].get(PROXY_CORE, 0) for r in runs]):.0%} | {bound}/{len(runs)} "
            f"| {sum(r['errors'] for r in runs)} | {median([r.get('origin_per_request', 0) for r in runs]):.2f} "
            f"| {rps_text} | {cpu_ratio:.2f}x |")
    return lines


def target_rows(results):
    rows = ["\n## Targets\n",
            "| scenario | target | req/s ratio | CPU ratio | p99 caching-proxy vs nginx ms | met |",
            "| --- | --- | ---: | ---: | --- | --- |"]
    for name, goal in TARGETS.items():
        if name not in results:
            continue
        by_target = results[name]
        runs, base = by_target["caching-proxy"], by_target[baseline(by_target)]
        rps_ratio, cpu_ratio, counted = ratios(runs, base)
        p99, p99_base = median([r["p99"] for r in runs]), median([r["p99"] for r in base])
        # A load-bound run says nothing of capacity; the CPU ratio does.
        judged = rps_ratio if counted else cpu_ratio
        met = judged >= goal and p99 <= p99_base
        rows.append(f"| {name} | >= {goal}x, p99 <= nginx | {f'{rps_ratio:.2f}x' if counted else 'load-bound'} "
                    f"| {cpu_ratio:.2f}x | {p99:.2f} vs {p99_base:.2f} | {'yes' if met else 'no'} |")
    for full, plain in (("full cache: hit 1 KiB", "hit 1 KiB"), ("full cache: miss", "miss")):
        if full in results and plain in results:
            a = results[full]["caching-proxy/full"]
            b = results[plain]["caching-proxy"]
            rps = median([r["rps"] for r in a]) / median([r["rps"] for r in b])
            cpu = median([r["cpu_us"] for r in b]) / median([r["cpu_us"] for r in a])
            rows.append(f"| {full} | within 10% of not full | {rps:.2f}x of not full | {cpu:.2f}x of not full "
                        f"| | {'yes' if min(rps, cpu) >= 0.9 else 'no'} |")
    return rows


def write(results, extras, rounds, duration):
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [f"# Benchmark {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n",
             f"Machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}. The load generator (wrk -t1 "
             f"-c64, or h2load) and the origin (static nginx, no access log, keep-alive) on core {LOAD_CORE}; the "
             f"target alone on core {PROXY_CORE}. {rounds} rounds x {duration} s, interleaved. nginx "
             f"{nginx_version()} (1 worker, proxy_cache on tmpfs, sendfile off, upstream keepalive, access log "
             f"to a file); Varnish {varnish_version()} (malloc storage, default parameters, no TLS); caching-proxy "
             f"with its defaults (access log to a file, metrics, Cache-Status). CPU per request: user + system "
             f"time of the target's process tree over the requests completed. A run whose load core was at 95% "
             f"or more is load-bound: its req/s is the load generator's, so req/s ratios use only rounds where "
             f"neither run was; the CPU ratio (nginx's CPU per request over the target's) uses every round.\n"]
    for target, share in extras.get("fullness", {}).items():
        lines.append(f"- {target}: filled to {share:.0%} of its 64 MiB before the full-cache rounds.")
    for name, by_target in results.items():
        lines += scenario_table(name, by_target)
    lines += target_rows(results)
    summary = []
    for name, by_target in results.items():
        if "caching-proxy" in by_target:
            rps_ratio, cpu_ratio, counted = ratios(by_target["caching-proxy"], by_target[baseline(by_target)])
            summary.append(f"{name}: {f'{rps_ratio:.2f}x' if counted else 'load-bound'} req/s, "
                           f"{cpu_ratio:.2f}x CPU")
    if "per_entry" in extras:
        per_entry = extras["per_entry"]
        lines += ["\n## Memory per cached 1 KiB entry\n", "| target | bytes per entry | ratio to nginx |",
                  "| --- | ---: | ---: |"]
        lines += [f"| {t} | {v:.0f} | {v / per_entry['nginx']:.2f}x |" for t, v in per_entry.items()]
    if "snapshot_load" in extras:
        load = extras["snapshot_load"]
        lines.append(f"\n## Start-up and snapshot\n\nStart-up to the first answered request: "
                     f"{extras['startup_ms']:.0f} ms.\n")
        lines.append("```\n" + extras["snapshot_text"].strip() + "\n```\n")
        lines.append(f"Hit 1 KiB while a snapshot of {load['entries']} entries is being written: "
                     f"{load['writing']:.0f} req/s against {load['quiet']:.0f} with no write, "
                     f"{load['ratio']:.2f}x (median of rounds).\n")
    if "cold" in extras:
        cold = extras["cold"]
        lines.append("\n## Cold start on a 1 GiB snapshot\n")
        lines += [f"- {key}: {value}" for key, value in cold.items()]
        summary.append(f"cold start: first hit {cold['first hit after start']}")
    return "\n".join(lines) + "\n", "; ".join(summary)
