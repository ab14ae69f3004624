"""A bench stopped by SIGTERM or Ctrl-C (SIGINT) mid-run leaves nothing it started behind: no
worker, web server, Temporal dev server or PostgreSQL (by pid, by process group and by port),
and it exits with 128 + the signal's number without writing a result.

Each case runs a real bench at its `tiny` size, in seconds. Not marked `slow`, so it runs
wherever the suite does (`make test`, CI, `-m "not slow"`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.lifecycle import descendants
from worker.devserver import port_open

ROOT = Path(__file__).resolve().parent.parent


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


def _until(proc: subprocess.Popen[str], out: Output, seen: Seen, marker: str) -> None:
    """Until the bench prints a line with `marker`, looking at its processes meanwhile."""
    deadline = time.monotonic() + 300
    while not any(marker in line for line in out.got):
        seen.look(proc.pid)
        assert proc.poll() is None, f"the bench ended before {marker!r}:\n{out.rest()}"
        assert time.monotonic() < deadline, f"no {marker!r} in 300 s:\n{''.join(out.got)}"
        out.next(timeout=0.1)
    seen.look(proc.pid)


CASES = [
    # the system bench in its throughput run: PostgreSQL, Temporal, the deal's and the bare worker
    ("system_bench", signal.SIGTERM, "deal throughput", {"worker", "bench.bare"}),
    # the web bench in its first part: the same, with `dealflow serve`
    ("web_bench", signal.SIGINT, "a rep's action", {"worker", "serve"}),
    # the metrics bench while loading: PostgreSQL alone
    ("metrics_bench", signal.SIGTERM, "loaded", set()),
]


@pytest.mark.parametrize(("module", "signum", "marker", "children"), CASES, ids=[c[0] for c in CASES])
def test_a_signal_mid_run_stops_everything_the_bench_started(
    tmp_path: Path, module: str, signum: signal.Signals, marker: str, children: set[str]
) -> None:
    with bench(module, tmp_path) as (proc, out, seen):
        _until(proc, out, seen, marker)
        commands = set()
        for pid in seen.processes:
            with contextlib.suppress(OSError):
                commands.add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        # the case stops what it means to: the servers and processes are up when the signal goes
        assert seen.postmasters, "no PostgreSQL seen"
        assert len(seen.ports) == (1 if module == "metrics_bench" else 2), seen.ports
        for name in children:
            assert any(name in c for c in commands), f"no {name} among {commands}"
        proc.send_signal(signum)
        proc.wait(120)
        printed = out.rest()
        assert proc.returncode == 128 + signum, printed
        assert f"stopped by {signum.name}: nothing written" in printed
        assert seen.left() == []
        assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
