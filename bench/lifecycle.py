"""What a benchmark starts, it stops: on success, on failure, on Ctrl-C, SIGTERM or SIGHUP.

Every bench goes through this one mechanism:

- `run(main)` runs the bench's coroutine with those signals turned into `Stopped`. The first
  signal cancels the main task, so every `finally` and context manager on the way out runs (they
  stop the servers) before `Stopped` leaves `run`; signals during that cleanup are ignored, since
  each stop is bounded by its own timeouts and a second Ctrl-C would otherwise leave servers
  half-stopped. Outside the event loop `signal_handlers()` raises `Stopped` directly.
- `child(...)` starts a process in a process group of its own: a stop reaches the children it
  has, and a Ctrl-C at the terminal reaches only the bench, which stops the group itself (before,
  workers in the bench's group died first and an interrupted bench could leave the rest behind).
- `postgres(...)` and `temporal(...)` are the embedded servers as context managers, killed when
  a clean stop fails. PostgreSQL's postmaster detaches from the bench (pg_ctl starts it in a
  session of its own), so it is stopped by its data directory, never by a process group.
- `sweep()` is the last net: any process still descended from the bench is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from store.embedded import EmbeddedPostgres, free_port
from worker.devserver import TemporalDevServer

T = TypeVar("T")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_SECONDS = 15.0
# postmasters this process started: not its descendants, but its own (the load figures count them)
POSTMASTERS: set[int] = set()
_stopped: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()  # what stop_group stopped


class Stopped(BaseException):
    """A signal asked the bench to stop; raised once what it started is stopped. A BaseException,
    like KeyboardInterrupt, so that no `except Exception` on the way out swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def signal_handlers() -> None:
    """Outside the event loop (parsing arguments, writing results): the signals raise `Stopped`."""
    for s in SIGNALS:
        signal.signal(s, _raise)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, with the first SIGTERM, SIGINT or SIGHUP cancelling it and raised as
    `Stopped` once its cleanup has run."""
    received: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            if received:
                return
            received.append(signum)
            name = signal.Signals(signum).name
            print(f"\n{name}: stopping what this bench started", file=sys.stderr, flush=True)
            task.cancel()

        for s in SIGNALS:
            loop.add_signal_handler(s, stop, s)
        try:
            return await main
        except asyncio.CancelledError:
            if received:
                raise Stopped(received[0]) from None
            raise
        finally:
            for s in SIGNALS:
                loop.remove_signal_handler(s)
                signal.signal(s, _raise if not received else signal.SIG_IGN)

    return asyncio.run(guarded())


def stop_group(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the process's group, SIGKILL to what is left after `grace` seconds; returns
    when the process is reaped. The group is the process's pid (`child` made it a leader). A
    process stopped before is left alone: its pid may name another process by now."""
    if proc in _stopped:
        return
    _stopped.add(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # members that outlived their leader
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def child(
    args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own, its output appended to `log`, stopped on the way out."""
    out: IO[bytes] | int = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_group(proc)
    finally:
        if not isinstance(out, int):
            out.close()


def postmaster(pg: EmbeddedPostgres) -> int | None:
    try:
        return int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def postgres(data_dir: Path, **options: Any) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL in `data_dir`, stopped (fast shutdown; killed if that fails) on the
    way out, even when it failed halfway through starting."""
    pg = EmbeddedPostgres(data_dir, **options)
    try:
        pg.start()
        pid = postmaster(pg)
        if pid is not None:
            POSTMASTERS.add(pid)
        yield pg
    finally:
        pid = postmaster(pg)
        try:
            pg.stop()
        except (subprocess.SubprocessError, OSError):
            pg.kill()
        if (pg.data_dir / "postmaster.pid").exists():  # pg_ctl gave up without an error
            pg.kill()
        POSTMASTERS.discard(pid or 0)


@contextlib.contextmanager
def temporal(tmp: Path) -> Iterator[TemporalDevServer]:
    """The Temporal dev server on a free port, its database and log in `tmp`, stopped with its
    process group on the way out."""
    server = TemporalDevServer(tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if server.process is not None:  # the dev server leads a session of its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)


def _parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            found[int(entry.parent.name)] = int(entry.read_text().rsplit(")", 1)[1].split()[1])
    return found


def descendants(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """Every living process below `root` (by parent pid, from /proc)."""
    parents = _parents() if parents is None else parents
    below: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - below
        below |= frontier
    return below


def sweep(grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, to whatever still descends from this process, the last net behind
    the context managers (a pool of processes a library left, a pg_ctl cut short). Returns the
    pids it found."""
    left = descendants(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while (left & descendants(os.getpid())) and time.monotonic() < deadline:
            time.sleep(0.1)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
    return sorted(left)
