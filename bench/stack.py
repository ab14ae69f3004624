"""A fresh embedded stack for a benchmark run: PostgreSQL and the Temporal dev server in a
directory of their own, the shipped processes deployed, and workers in processes of their own
(so their memory can be read) when a benchmark asks for one."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from definitions.loader import PinnedDefinition, load_file, shipped
from store import registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres, free_port
from store.migrations import migrate
from worker.devserver import TemporalDevServer
from worker.settings import Settings


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}, Python {platform.python_version()}"


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

    def worker_process(self, task_queue: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        """`dealflow worker` on `task_queue`, in a process of its own."""
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.server.address,
            "DATABASE_URL": self.pg.url,
            "DEALFLOW_TASK_QUEUE": task_queue,
            "DEALFLOW_HOME": str(self.tmp / f"home-{task_queue}"),
            # its metrics and health on a free port: several workers run side by side
            "DEALFLOW_METRICS_ADDRESS": "127.0.0.1:0",
        }
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
        return subprocess.Popen(
            [sys.executable, "-m", "client.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def bare_worker_process(self, task_queue: str) -> subprocess.Popen[bytes]:
        """The bare baseline's worker (bench.bare), in a process of its own like the deal's."""
        return subprocess.Popen(
            [sys.executable, "-m", "bench.bare", self.server.address, task_queue],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def bench_stack(prefix: str) -> AsyncIterator[BenchStack]:
    tmp = Path(tempfile.mkdtemp(prefix=f"dealflow-{prefix}-"))
    pg = EmbeddedPostgres(tmp / "pg")
    pg.start()
    server = TemporalDevServer(tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
    try:
        server.start()
        pool = await connect_pool(pg.url, max_size=20)
        try:
            await migrate(pool)
            deployed = {}
            for path in shipped():
                pinned = load_file(path)
                await registry.deploy(pool, pinned, deployed_by=prefix)
                deployed[pinned.name] = pinned
            temporal = await Client.connect(server.address, data_converter=pydantic_data_converter)
            yield BenchStack(tmp, pg, server, pool, temporal, deployed)
        finally:
            await pool.close()
    finally:
        server.stop()
        pg.stop()


RESULTS = Path(__file__).parent / "results"


def bench_main(doc: str, name: str, run: Callable[[bool], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    """A benchmark's command line: `--quick` for a try-out; the results printed and written to
    bench/results/NAME.json (NAME-quick.json for a try-out)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a try-out")
    args = parser.parse_args()
    result = asyncio.run(run(args.quick))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}{'-quick' if args.quick else ''}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
