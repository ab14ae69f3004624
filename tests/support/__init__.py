"""Helpers the test modules share: the tests' and the checkout's folders, wait for a condition,
name a deal. The package's modules hold the helpers of one kind of test each (`cli` runs the
`dealflow` CLI as a process, `web` the ASGI app, `browser` chromium, ...).

Test modules import these from here, never from one another (`tests/unit/test_layout.py` checks),
so that running one test file never collects another's tests and a helper has one home. Fixtures
live in `tests/conftest.py`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent, DealStarted, StageEntered
from domain.state import fold
from store import event_log

# tests/, where the data folders are (processes/, broken/, exports/, replay/), and the checkout
TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent

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
