"""What the crash and outage tests need: a worker in a process of its own (so it can be killed
with SIGKILL), a webhook receiver that counts every delivery by its idempotency key, and the
exact comparison of each deal's event log with the events in its Temporal history."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from audit.history import deal_events, fetch_deal
from client.api import DealflowClient
from domain.events import DealEvent
from store import event_log
from tests.support import ROOT


class WorkerProcess:
    """`dealflow worker` (or another worker module run with `python -m`) as a child process."""

    def __init__(self, env: dict[str, str], log: Path, command: tuple[str, ...] = ("cli.main", "worker")):
        self.env = env
        self.log = log
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.command],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, tasks and activities abandoned mid-flight."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class CountingReceiver:
    """An HTTP endpoint for the webhook channel: every request counted by its Idempotency-Key."""

    deliveries: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, Any] = field(default_factory=dict)
    server: asyncio.Server | None = None
    url: str = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                key = headers.get("idempotency-key", "?")
                self.deliveries[key] += 1
                self.bodies[key] = json.loads(body or b"null")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Message-Id: m-" + key.encode() + b"\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class LogCheck:
    deals: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: list[str] = field(default_factory=list)


async def recorded_events(client: DealflowClient, deal_id: str) -> list[DealEvent]:
    """The deal's events as Temporal's history holds them (every one, once its workflow ended)."""
    return deal_events(await fetch_deal(client.temporal, deal_id))


async def compare_logs(client: DealflowClient, pool: asyncpg.Pool, deal_ids: list[str]) -> LogCheck:
    """Each deal's log against the events in Temporal's history: every event once, in order, equal."""
    check = LogCheck()
    for deal_id in deal_ids:
        workflow_events = await recorded_events(client, deal_id)
        logged = await event_log.read(pool, deal_id)
        rows = await pool.fetch("SELECT seq, count(*) AS n FROM deal_events WHERE deal_id = $1 GROUP BY seq", deal_id)
        check.deals += 1
        check.events += len(workflow_events)
        check.duplicated += sum(r["n"] - 1 for r in rows)
        check.lost += len({e.seq for e in workflow_events} - {r["seq"] for r in rows})
        if logged != workflow_events:
            first = next(
                (i for i, (a, b) in enumerate(zip(logged, workflow_events, strict=False)) if a != b),
                min(len(logged), len(workflow_events)),
            )
            show = [
                f"log {logged[first] if first < len(logged) else None!r}",
                f"workflow {workflow_events[first] if first < len(workflow_events) else None!r}",
            ]
            check.mismatched.append(f"{deal_id} at #{first + 1}: " + " / ".join(show))
    return check


async def log_complete(client: DealflowClient, pool: asyncpg.Pool, deal_ids: list[str]) -> bool:
    """Every event Temporal's history has handed to an append is in the log."""
    for deal_id in deal_ids:
        if await event_log.count(pool, deal_id) < len(await recorded_events(client, deal_id)):
            return False
    return True


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait for `predicate` to hold; a test that waits longer fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done in {timeout:.0f} s: {what}")
        await asyncio.sleep(0.3)
