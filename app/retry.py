"""Asking Temporal again, under the same id, when its answer is lost on the way.

Under load a call to Temporal can time out (the SDK raises `WorkflowUpdateRPCTimeoutOrCancelledError`
for an update, an `RPCError` with DEADLINE_EXCEEDED for other calls) or its connection can drop
(UNAVAILABLE, CANCELLED, a reset), and then the request may or may not have taken effect. Every
request dealflow sends has a stable id: an update's id is the rep's request id, which Temporal
and the deal both answer from their record, and a start's is the deal's workflow id. So the
client sends it again, with a growing pause between attempts, until it has an answer or its
deadline (`DEALFLOW_REQUEST_DEADLINE_SECONDS`, 60 s by default) has passed; then `NoAnswer`
says the outcome is unknown, and the caller can repeat the request itself under the same id.

`until_answered` knows nothing of deals: what an answer means, and what to say when there is
none, is the caller's (`app/deal_workflows.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger("dealflow.client")

T = TypeVar("T")

# the pause before the second attempt; it doubles up to the longest, each drawn between half and
# all of it, so that clients that lost their answers together do not come back together
FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 2.0

_rng = random.Random()

LostAnswer = Literal["rpc_timeout", "connection", "overloaded"]
# what the core client reports, with status UNKNOWN, when the connection itself failed
_DROPPED = ("transport error", "connection reset", "broken pipe", "connection refused", "connection closed")
# what Temporal says of a request too large to take, measured on the dev server: above its blob
# limit (2 MiB per payload, INVALID_ARGUMENT) and above gRPC's message limit (4 MiB,
# RESOURCE_EXHAUSTED). Neither will ever get through: both are answers, not lost ones.
_TOO_LARGE = ("blob data size exceeds limit", "larger than max")


def too_large(exc: BaseException) -> bool:
    """Whether Temporal refused the request for its size."""
    return isinstance(exc, RPCError) and any(m in exc.message.lower() for m in _TOO_LARGE)


def lost_answer(exc: BaseException) -> LostAnswer | None:
    """Why `exc` leaves the outcome of the request unknown, or None if `exc` is an answer.

    An answer (a refusal, NOT_FOUND, FAILED_PRECONDITION, a wrong argument) goes to the caller as
    it is; only a lost one is worth asking again for.
    """
    if isinstance(exc, RPCTimeoutOrCancelledError):
        return "rpc_timeout"
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
            return "rpc_timeout"
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED):
            return "connection"
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED and not too_large(exc):
            return "overloaded"  # (too many updates in flight on one deal, a rate limit): nothing taken
        if exc.status == RPCStatusCode.UNKNOWN and any(m in exc.message.lower() for m in _DROPPED):
            return "connection"
        return None
    if isinstance(exc, ConnectionError):
        return "connection"
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return "connection"  # a lazily connected client that could not connect: nothing was sent
    return None


class NoAnswer(Exception):
    """The deadline passed without an answer: the request may or may not have taken effect."""

    def __init__(self, seconds: float, attempts: int, last: BaseException | None):
        super().__init__(f"no answer in {seconds:g} s ({attempts} attempts; last: {last!r})")
        self.seconds = seconds
        self.attempts = attempts
        self.last = last


@dataclass
class Deadline:
    """The time one request may take, every attempt included (and shared by every retry loop
    that request goes through)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.started)


@dataclass
class RetryCounts:
    """A client's running totals: the answers lost, by why; the requests sent again; the requests
    given up on at their deadline. The overload test and the benchmarks read them."""

    lost: Counter[str] = field(default_factory=Counter)
    resent: int = 0
    gave_up: int = 0

    def note(self, why: str) -> None:
        self.lost[why] += 1

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.lost.items()))
        return f"{self.resent} sent again, answers lost: {kinds or 'none'}; {self.gave_up} given up"


def pause_before(attempt: int, rng: random.Random | None = None) -> float:
    """The pause before attempt number `attempt` (1 is the second attempt)."""
    full: float = min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2.0 ** (attempt - 1))
    return full * (0.5 + (rng or _rng).random() / 2)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def until_answered(
    send: Callable[[int], Awaitable[T]],
    deadline: Deadline,
    counts: RetryCounts,
    *,
    what: str,
) -> T:
    """`send(attempt)` (attempt 0, 1, ...) until it answers, or raise `NoAnswer` at the deadline.

    `send` must be safe to repeat: the same request under the same id. Its answer, and any error
    that is an answer (see `lost_answer`), go to the caller; a lost answer is counted in `counts`
    and the request sent again after a pause. No attempt runs past the deadline.
    """
    attempt = 0
    last: BaseException | None = None
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            counts.gave_up += 1
            raise NoAnswer(deadline.seconds, attempt, last)
        if attempt:
            counts.resent += 1
        budget = asyncio.timeout(remaining)
        try:
            async with budget:
                return await send(attempt)
        except Exception as exc:
            if budget.expired():
                why: LostAnswer | None = "rpc_timeout"  # our own deadline cut the attempt short
            else:
                # the SDK turns a cancelled update call into the same error as a timed-out one:
                # a caller cancelling the request is not a lost answer
                if _being_cancelled():
                    raise asyncio.CancelledError() from exc
                why = lost_answer(exc)
            if why is None:
                raise
            last = exc
        attempt += 1
        counts.note(why)
        pause = min(pause_before(attempt), deadline.remaining())
        log.info("%s: answer lost (%s: %r); attempt %d in %.2f s", what, why, last, attempt + 1, pause)
        if pause > 0:
            await asyncio.sleep(pause)
