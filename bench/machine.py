"""What a result was measured on and under: the machine, and the load beside the bench.

A ratio measured on a shared machine means something only with what else ran there, so each
result file records the machine (cores, CPU model, memory, the versions of Python, the Temporal
SDK and server, and PostgreSQL) and the load: the load averages before and after, and the CPU
time other processes used while the bench ran (the machine's busy time from /proc/stat, less
what the bench's own processes used, read from /proc/PID/stat once a second).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.lifecycle import POSTMASTERS, descendants
from store.embedded import _bin as postgres_bin
from worker.devserver import temporal_binary

TICK = os.sysconf("SC_CLK_TCK")
# the share of the machine's cores others may use for a run to count as alone
ALONE_BELOW = 0.05


def _first(path: str, key: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _version(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(_first("/proc/meminfo", "MemTotal").split()[0]) / 1024**2, 1),
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "temporal_server": _version([temporal_binary(), "--version"]),
        "postgres": _version([str(postgres_bin() / "postgres"), "--version"]),
    }


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _machine_busy() -> tuple[float, float]:
    """CPU seconds the machine spent busy (every core, every process and the kernel) and stolen
    by a hypervisor, since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK, steal / TICK


def _processes() -> dict[int, tuple[str, int, float]]:
    """Every process: its command, its parent and the CPU seconds it has used."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = entry.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            found[int(entry.parent.name)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return found


class LoadMonitor:
    """Samples the machine while a bench runs, in a thread of its own (a few milliseconds a
    second); `stop()` gives the figures."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.loadavg_before = _loadavg()
        self.started = time.monotonic()
        self.busy_before, self.steal_before = _machine_busy()
        self.last = {pid: cpu for pid, (_, _, cpu) in _processes().items()}
        self.ours: set[int] = {os.getpid()}
        self.ours_cpu = 0.0
        self.others: dict[str, float] = {}  # CPU seconds of other processes, by command
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        procs = _processes()
        parents = {pid: parent for pid, (_, parent, _) in procs.items()}
        for root in {os.getpid(), *POSTMASTERS}:
            self.ours |= {root} | descendants(root, parents)
        for pid, (comm, _, cpu) in procs.items():
            used = cpu - self.last.get(pid, 0.0)  # a process new since the last sample: all of it
            self.last[pid] = cpu
            if pid in self.ours:
                self.ours_cpu += used
            else:
                self.others[comm] = self.others.get(comm, 0.0) + used

    def stop(self) -> dict[str, Any]:
        self._done.set()
        self._thread.join()
        self.sample()
        seconds = time.monotonic() - self.started
        busy, steal = _machine_busy()
        machine_cpu = busy - self.busy_before
        others = max(0.0, machine_cpu - self.ours_cpu)
        cores = len(os.sched_getaffinity(0))
        share = others / (seconds * cores) if seconds else 0.0
        return {
            "seconds": round(seconds, 1),
            "loadavg_before": self.loadavg_before,
            "loadavg_after": _loadavg(),
            "cpu_seconds_machine": round(machine_cpu, 1),
            "cpu_seconds_this_bench": round(self.ours_cpu, 1),
            "cpu_seconds_others": round(others, 1),
            "others_share_of_cores": round(share, 3),
            "steal_seconds": round(steal - self.steal_before, 1),
            "alone": share < ALONE_BELOW,
            "busiest_others": [
                {"command": comm, "cpu_seconds": round(cpu, 1)}
                for comm, cpu in sorted(self.others.items(), key=lambda kv: -kv[1])[:5]
                if cpu > 0
            ],
        }
