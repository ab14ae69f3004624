"""Failed sign-ins per client address: after a few, each further attempt waits twice as long.

A token is 32 random bytes, so guessing one is hopeless anyway; the throttle keeps a script from
trying thousands a second, and makes the attempt visible (the caller records each failure in
the access refusals). It is kept in memory, per server process: a restart forgets it. Behind a
proxy every client shares the proxy's address, and so its allowance.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

FREE_FAILURES = 5  # failures allowed in a window before any wait
WINDOW = timedelta(minutes=15)  # failures older than this are forgotten
FIRST_WAIT = timedelta(seconds=1)  # after FREE_FAILURES; doubled by each failure after it
LONGEST_WAIT = timedelta(minutes=15)
MAX_ADDRESSES = 10_000  # the oldest address is forgotten beyond this


@dataclass
class _Failures:
    times: deque[datetime] = field(default_factory=deque)
    announced: bool = False  # whether the present wait was recorded already


class SignInThrottle:
    def __init__(self) -> None:
        self._by_address: dict[str, _Failures] = {}

    def _recent(self, address: str, now: datetime) -> _Failures:
        found = self._by_address.get(address)
        if found is None:
            return _Failures()
        while found.times and now - found.times[0] >= WINDOW:
            found.times.popleft()
        return found

    def wait(self, address: str, now: datetime) -> int:
        """Whole seconds `address` must wait before its next attempt; 0: it may try now."""
        failures = self._recent(address, now)
        excess = len(failures.times) - FREE_FAILURES
        if excess < 0:
            return 0
        wait = min(FIRST_WAIT * (1 << min(excess, 20)), LONGEST_WAIT)
        left = (failures.times[-1] + wait - now).total_seconds()
        return max(0, math.ceil(left))

    def first_refusal(self, address: str) -> bool:
        """True once per wait: the moment to record that `address` is being held back."""
        failures = self._by_address.get(address)
        if failures is None or failures.announced:
            return False
        failures.announced = True
        return True

    def failed(self, address: str, now: datetime) -> None:
        failures = self._recent(address, now)
        failures.times.append(now)
        failures.announced = False
        self._by_address.pop(address, None)
        self._by_address[address] = failures  # the most recent last, for forgetting the oldest
        while len(self._by_address) > MAX_ADDRESSES:
            del self._by_address[next(iter(self._by_address))]

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)
