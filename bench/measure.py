"""What a run cost: CPU time of a process tree (user and system, from
/proc/PID/stat) and how busy each core was (from /proc/stat), sampled
before and after a load run. Shared by the benchmark scripts.

CPU per request is the figure noise moves least: a neighbour on the
machine slows a run down, but a request still costs what it costs. Core
busy shows who limited the run: the proxy's core should be the one at
100%; a load core at 100% means the load generator set the pace and the
run's req/s says nothing about the target (flagged in the report).
"""

import os
import re
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# A load core busier than this was the limit of the run, not the target.
SATURATED = 0.95


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def tree_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process tree, all threads."""
    user = system = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
        user += int(fields[11])
        system += int(fields[12])
    return user / TICKS, system / TICKS


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core, from /proc/stat."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        values = list(map(int, values))
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # without guest time, already in user
        times[name[3:]] = (total - idle, total)
    return times


class Sample:
    """CPU of one target's process tree and of every core over a run."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self.cpu = tree_cpu(pid) if pid else (0.0, 0.0)
        self.cores = core_times()

    def finish(self, requests: int) -> dict:
        """Per-request CPU (microseconds) and each core's busy share."""
        user, system = tree_cpu(self.pid) if self.pid else (0.0, 0.0)
        cores = core_times()
        busy = {}
        for core, (b1, t1) in cores.items():
            b0, t0 = self.cores.get(core, (b1, t1))
            busy[core] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        n = max(requests, 1)
        return {
            "user_us": (user - self.cpu[0]) * 1e6 / n,
            "sys_us": (system - self.cpu[1]) * 1e6 / n,
            "cpu_us": (user - self.cpu[0] + system - self.cpu[1]) * 1e6 / n,
            "busy": busy,
        }


def saturated(result: dict, load_core: str) -> bool:
    """Whether the load core set the pace of a run."""
    return result["busy"].get(load_core, 0.0) >= SATURATED
