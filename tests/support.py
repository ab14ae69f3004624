"""Helpers the test modules share: run the `dealflow` CLI, wait for a condition, name a deal.

Test modules import these from here, never from one another (`tests/test_layout.py` checks), so
that running one test file never collects another's tests and a helper has one home. Fixtures
live in `tests/conftest.py`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent, DealStarted, StageEntered
from domain.state import fold
from store import event_log

HERE = Path(__file__).parent
ROOT = HERE.parent
DEALFLOW = [sys.executable, "-m", "cli.main"]

# facts that complete each stage of the shipped seven-stage process
SEVEN_FACTS: dict[str, dict[str, object]] = {
    "prospecting": {"need": "CRM", "can_afford": "yes"},
    "preparation": {"buying_steps": "RFP then board"},
    "needs-assessment": {"decision_maker": "CFO", "budget": "50000", "buying_phase": "evaluation"},
    "presentation": {"approach": "question", "next_step": "trial"},
    "objection-handling": {"competitors": "Acme", "enabling_action": "reference call"},
    "closing": {"close_technique": "urgency", "signed_on": "2026-04-01"},
    "follow-up": {"satisfied": "yes", "referrals": "2"},
}


def new_deal_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def dealflow(env: dict[str, str], *args: str, timeout: float = 60) -> Run:
    """The CLI as a separate process. Awaited as an asyncio subprocess: the worker of the session
    runs in the test process, and a blocking call would stop it serving the deal the CLI talks to.
    A run that outlasts `timeout` is killed and fails the test."""
    proc = await asyncio.create_subprocess_exec(
        *DEALFLOW, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"dealflow {' '.join(args)} still running after {timeout} s") from None
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def logged(pool: asyncpg.Pool, deal_id: str, n: int) -> None:
    """Wait until the event log holds at least `n` events of the deal (it trails the workflow)."""

    async def enough() -> bool:
        return await event_log.count(pool, deal_id) >= n

    await wait_for(enough)


LOG_T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def log_batch(deal: str, seqs: range) -> AppendEvents:
    """A batch of a made-up deal's events `seqs` (a start, then stages s2, s3, ...) for the log's
    own tests, with the deal's snapshot as of its last event."""
    events: list[DealEvent] = [
        DealStarted(seq=1, at=LOG_T0, actor="a", deal_id=deal, process="p", version="v", content_hash="h", owner="o")
    ]
    events += [StageEntered(seq=n, at=LOG_T0, actor="a", stage=f"s{n}", via="next") for n in range(2, max(seqs) + 1)]
    chosen = [e for e in events if e.seq in seqs]
    return AppendEvents(deal_id=deal, events=chosen, snapshot=DealSnapshot.of(fold(events[: max(seqs)])))
