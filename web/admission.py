"""How many writes the web app runs at once: past that, a write is refused at once with 429 and
a Retry-After, rather than queued behind the others until every caller's answer is late.

A write holds Temporal (an update or a start, waiting for the deal's worker) and PostgreSQL for
as long as it runs, so the number in flight is what the stack is asked to sustain. The limit is
`DEALFLOW_WEB_MAX_WRITES` (default 32); reads are not limited here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from fastapi import Request

from client.api import DealflowError
from worker.settings import SettingsError

MAX_WRITES_ENV_VAR = "DEALFLOW_WEB_MAX_WRITES"
DEFAULT_MAX_WRITES = 32
RETRY_AFTER_SECONDS = 1


class Overloaded(DealflowError):
    code = "overloaded"


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.in_flight >= self.limit:
            self.refused += 1
            raise Overloaded(
                f"the server is running {self.in_flight} writes, its limit: repeat in {RETRY_AFTER_SECONDS} s "
                "(with the same Idempotency-Key)",
                details={"retry_after": RETRY_AFTER_SECONDS},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1


def max_writes() -> int:
    raw = os.environ.get(MAX_WRITES_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_WRITES
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{MAX_WRITES_ENV_VAR}={raw!r}: give a whole number of writes, 1 or more")
    return int(raw)


def admission_of(request: Request) -> Admission:
    """The app's one Admission, made on first use."""
    state = request.app.state
    if not hasattr(state, "admission"):
        state.admission = Admission(max_writes())
    admission: Admission = state.admission
    return admission
