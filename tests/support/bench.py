"""What the tests of the benchmarks share: a bench run at a tiny size as a child process, what it
prints, and every process it has started, by pid and process group."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from bench.lifecycle import descendants
from tests.support import ROOT
from worker.devserver import port_open


def _stat(pid: int) -> tuple[str, int, int] | None:
    """A living process's state, process group and start time; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2]), int(fields[19])


def _alive(pid: int, started: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == started  # not a zombie, not a reused pid


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] == pgid and stat[0] != "Z":
            found.append(int(entry.name))
    return found


class Seen:
    """Everything a running bench has started, gathered while it runs: its descendants (pid and
    start time), their process groups, and the ports of its PostgreSQL and Temporal servers (the
    postmaster detaches, so it is found by its data directory under the bench's TMPDIR)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.processes: dict[int, int] = {}
        self.groups: set[int] = set()
        self.ports: set[int] = set()
        self.postmasters: dict[int, int] = {}

    def look(self, bench: int) -> None:
        for pid in descendants(bench):
            stat = _stat(pid)
            if stat is None:
                continue
            self.processes.setdefault(pid, stat[2])
            self.groups.add(stat[1])
            with contextlib.suppress(OSError):
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if args[0].endswith(b"temporal") and b"--port" in args:
                    self.ports.add(int(args[args.index(b"--port") + 1]))
        for pid_file in self.tmp.glob("**/postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                lines = pid_file.read_text().splitlines()
                stat = _stat(int(lines[0]))
                if stat is not None:
                    self.postmasters.setdefault(int(lines[0]), stat[2])
                    self.groups.add(stat[1])
                    self.ports.add(int(lines[3]))

    def left(self) -> list[str]:
        found = [f"process {pid}" for pid, started in self.processes.items() if _alive(pid, started)]
        found += [f"postmaster {pid}" for pid, started in self.postmasters.items() if _alive(pid, started)]
        found += [f"group {g}: {members}" for g in self.groups if (members := _group_members(g))]
        found += [f"port {port} still open" for port in sorted(self.ports) if port_open("127.0.0.1", port)]
        found += [f"{p} still there" for p in self.tmp.glob("**/postmaster.pid")]
        return found

    def kill_left(self) -> None:
        """After a failed case: nothing left running for the next one."""
        for pid, started in [*self.processes.items(), *self.postmasters.items()]:
            if _alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Output:
    """The bench's output, line by line, read in a thread so that the test can look meanwhile."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: queue.Queue[str] = queue.Queue()
        self.got: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)

    def next(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.got.append(self.lines.get(timeout=timeout))

    def rest(self) -> str:
        """All of it, once the bench has ended."""
        self._reader.join(30)
        while not self.lines.empty():
            self.got.append(self.lines.get_nowait())
        return "".join(self.got)


@contextlib.contextmanager
def bench(module: str, tmp: Path) -> Iterator[tuple[subprocess.Popen[str], Output, Seen]]:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "DEALFLOW_TASK_QUEUE"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", "--size", "tiny", "--results", str(tmp / "results")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as at a terminal: none of it may be left
    )
    seen = Seen(tmp)
    seen.groups.add(proc.pid)
    try:
        yield proc, Output(proc), seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        seen.kill_left()
