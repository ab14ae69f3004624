"""A fresh embedded stack for a benchmark run: PostgreSQL and the Temporal dev server in a
directory of their own, the shipped processes deployed, and workers in processes of their own
(so their memory can be read) when a benchmark asks for one."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench import lifecycle
from bench.machine import LoadMonitor, machine
from definitions.loader import PinnedDefinition, load_file, shipped
from store import registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres
from store.migrations import migrate
from worker.devserver import TemporalDevServer
from worker.settings import Settings

S = TypeVar("S")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User and system CPU time a process has used (with its living children, for PostgreSQL's
    backends); 0 for a process that is gone. Linux /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    if children:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        used += sum(cpu_seconds(int(kid)) for kid in kids)
    return used


@dataclass
class BenchStack:
    tmp: Path
    pg: EmbeddedPostgres
    server: TemporalDevServer
    pool: asyncpg.Pool
    temporal: Client
    deployed: dict[str, PinnedDefinition]
    # the processes started on this stack, stopped (if not before) when the stack is
    exits: ExitStack = field(default_factory=ExitStack)

    def cpu(self, **workers: int) -> dict[str, float]:
        """CPU seconds used so far by this process (the client), the given worker processes, the
        Temporal server and PostgreSQL (postmaster and backends): read before and after a phase,
        the differences say where its time went."""
        postmaster = int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])
        server = self.server.process.pid if self.server.process else 0
        return {
            "client": cpu_seconds(os.getpid()),
            **{name: cpu_seconds(pid) for name, pid in workers.items()},
            "temporal_server": cpu_seconds(server),
            "postgres": cpu_seconds(postmaster, children=True),
        }

    def settings(self, task_queue: str) -> Settings:
        return Settings(temporal_address=self.server.address, database_url=self.pg.url, task_queue=task_queue)

    def process(
        self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """A process in a group of its own, stopped with the stack if not before (`stop`)."""
        return self.exits.enter_context(lifecycle.child(args, env=env, log=log))

    def stop(self, *procs: subprocess.Popen[bytes]) -> None:
        for proc in procs:
            lifecycle.stop_group(proc)

    def worker_process(
        self, task_queue: str, log: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`dealflow worker` on `task_queue`, in a process of its own (`env` added to its environment)."""
        environment = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.server.address,
            "DATABASE_URL": self.pg.url,
            "DEALFLOW_TASK_QUEUE": task_queue,
            "DEALFLOW_HOME": str(self.tmp / f"home-{task_queue}"),
            # its metrics and health on a free port: several workers run side by side
            "DEALFLOW_METRICS_ADDRESS": "127.0.0.1:0",
            **(env or {}),
        }
        return self.process([sys.executable, "-m", "cli.main", "worker"], env=environment, log=log)

    def bare_worker_process(self, task_queue: str) -> subprocess.Popen[bytes]:
        """The bare baseline's worker (bench.bare), in a process of its own like the deal's."""
        return self.process(
            [sys.executable, "-m", "bench.bare", self.server.address, task_queue], log=self.tmp / f"{task_queue}.log"
        )


@asynccontextmanager
async def bench_stack(prefix: str) -> AsyncIterator[BenchStack]:
    """The stack, stopped on the way out whatever the way: the processes started on it, then
    Temporal, then PostgreSQL (bench.lifecycle)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"dealflow-{prefix}-"))
    with lifecycle.postgres(tmp / "pg") as pg, lifecycle.temporal(tmp) as server:
        pool = await connect_pool(pg.url, max_size=20)
        try:
            await migrate(pool)
            deployed = {}
            for path in shipped():
                pinned = load_file(path)
                await registry.deploy(pool, pinned, deployed_by=prefix)
                deployed[pinned.name] = pinned
            temporal = await Client.connect(server.address, data_converter=pydantic_data_converter)
            with ExitStack() as exits:
                yield BenchStack(tmp, pg, server, pool, temporal, deployed, exits)
        finally:
            await close_pool(pool)


async def close_pool(pool: asyncpg.Pool) -> None:
    """Closed, or cut off if a connection is still busy after ten seconds (a query a stop cut
    short), so that PostgreSQL's fast shutdown is not left waiting for it."""
    try:
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()


RESULTS = Path(__file__).parent / "results"


def bench_main(
    doc: str,
    name: str,
    sizes: Mapping[str, S],
    run: Callable[[S, argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    *,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """A benchmark's command line: `--size` (`default` is what `make bench` runs, `org` what
    `make bench-org` runs, `quick` a try-out, `tiny` the tests' seconds-long run); the result,
    with the machine and the load it ran under, written to DIR/NAME.json (NAME-SIZE.json for a
    size other than `default`) and printed. Whatever it started is stopped on any way out
    (bench.lifecycle); a signal ends it with 128 + the signal's number, writing nothing."""
    lifecycle.signal_handlers()
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--size", choices=list(sizes), default="default", help="the sizes to run (default: default)")
    parser.add_argument("--quick", action="store_const", dest="size", const="quick", help="the same as --size quick")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR", help="where the result file goes")
    if options:
        options(parser)
    args = parser.parse_args()
    command = " ".join(["python -m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])
    monitor = LoadMonitor()
    started = time.monotonic()
    try:
        measured = lifecycle.run(run(sizes[args.size], args))
    except lifecycle.Stopped as stopped:
        print(f"{stopped}: nothing written", file=sys.stderr, flush=True)
        sys.exit(stopped.exit_code)
    finally:
        left = lifecycle.sweep()
        if left:
            print(f"stopped processes left behind: {left}", file=sys.stderr, flush=True)
    result = {
        "benchmark": name,
        "size": args.size,
        "command": command,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "load": monitor.stop(),
        **measured,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / (f"{name}.json" if args.size == "default" else f"{name}-{args.size}.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    if show:
        show(result)
    else:
        print(json.dumps(result, indent=2))
    print(f"written to {path}", flush=True)
    return result
