"""A deal's figures: pure functions of its visits, touches and notices, and its version's layout.

`figures` is the deal's contribution to every figure as of an instant, with the definitions of
`store.metrics`; `contributions` and `step` turn it into the day steps the tables keep (see the
package's docstring). No database here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from definitions.model import ProcessDefinition
from domain.events import (
    CadenceStarted,
    DealClosed,
    DealEvent,
    DealLost,
    DealStarted,
    DealWon,
    Escalated,
    MigratedToVersion,
    ReminderSent,
    SlaBreached,
    StageCompleted,
    StageEntered,
    StageSkipped,
    TouchSent,
)
from store.visits import DealVisits, Visit
from store.visits import advance as advance_visits

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
WON_REACH = 1_000_000  # "won" is further than any stage (as in store.metrics)


class Kind(IntEnum):
    """What a row counts: below 50 counts, from 50 histograms, which count deals (or visits) per
    value `x`, in microseconds."""

    ENTERED = 1
    COMPLETED = 2
    MOVED_BACK = 3
    LOST = 4
    STRICT_NEXT = 5  # left for the next stage (first such exit)
    STRICT_WON = 6  # won at the stage
    LATER = 7  # entered it, and afterwards a later stage, or won
    SKIPPED = 8
    REASON = 9  # detail: the reason
    SLA_BREACHED = 10
    REMINDERS = 11
    ESCALATIONS = 12
    PHASE_ENTERED = 20  # (lost in a phase: the deals lost at its stages, as a deal is lost once)
    PHASE_CONVERTED = 22
    DEALS = 30
    WON = 31
    LOST_DEALS = 32  # (open: the others)
    WON_TOUCHES = 34  # n: touches of won deals, added up
    WITH_CADENCE = 35
    FIVE_PLUS = 36
    PIPELINE = 37  # open deals in the stage, x: their value
    FIRST = 50
    CUMULATIVE = 51
    PHASE_TIME = 52
    CYCLE = 53


HISTOGRAMS = (Kind.FIRST, Kind.CUMULATIVE, Kind.PHASE_TIME, Kind.CYCLE)
NOTICE_KINDS = {"SlaBreached": Kind.SLA_BREACHED, "ReminderSent": Kind.REMINDERS, "Escalated": Kind.ESCALATIONS}

Key = tuple[int, str, str, float]  # kind, stage (or phase), detail, x
Figures = Counter[Key]

# events that change a deal's figures beyond one count of their own (CORE, TOUCHING: the figures
# are computed again from the deal's visits), and those that are such a count
CORE = (DealStarted, StageEntered, StageCompleted, StageSkipped, DealWon, DealLost, DealClosed, MigratedToVersion)
TOUCHING = (TouchSent, CadenceStarted)
COUNTED = (SlaBreached, ReminderSent, Escalated)
RELEVANT = CORE + TOUCHING + COUNTED


class Layout:
    """What the figures need of a process version's definition: the stage order and each stage's
    phase ("later", and "in a phase"). Versions that keep these share their aggregates; the next
    stages and the probabilities are applied when the figures are asked for.
    """

    def __init__(self, stages: Sequence[tuple[str, str]]):
        self.stages = tuple((s, p) for s, p in stages)
        self.pos = {s: i + 1 for i, (s, _) in enumerate(self.stages)}
        self.phase_of = dict(self.stages)
        self.phases = list(dict.fromkeys(p for _, p in self.stages))
        self.phase_last = {p: max(self.pos[s] for s, q in self.stages if q == p) for p in self.phases}
        self.text = json.dumps([list(s) for s in self.stages], separators=(",", ":"))

    @classmethod
    def of(cls, d: ProcessDefinition) -> Layout:
        return cls([(s.id, s.phase) for s in d.stages])

    @classmethod
    def parse(cls, text: str) -> Layout:
        return cls([(s, p) for s, p in json.loads(text)])


@dataclass
class DealFacts:
    """What a deal's figures are computed from.

    `touches` and `cadence` stand for the touches and cadence starts that happened before every
    instant the figures are asked at, beyond those in `notices`: the append passes what it has
    already counted there, so it need not read the deal's earlier events.
    """

    started_at: datetime | None
    value: float | None
    visits: list[Visit]
    notices: list[tuple[str, str | None, datetime]] = field(default_factory=list)  # type, stage, at
    touches: int = 0
    cadence: bool = False

    @classmethod
    def of(cls, events: Sequence[DealEvent]) -> DealFacts:
        started = next((e for e in events if isinstance(e, DealStarted)), None)
        return cls(
            started_at=started.at if started else None,
            value=started.value if started else None,
            visits=visits_of(events),
            notices=notices(events),
        )

    def instants(self) -> set[datetime]:
        """Every instant at which the figures may change (all are event instants)."""
        out = {at for _, _, at in self.notices}
        if self.started_at is not None:
            out.add(self.started_at)
        for v in self.visits:
            out.add(v.entered_at)
            out.update(t for t in (v.exit_at, v.completed_at) if t is not None)
        return out


def visits_of(events: Iterable[DealEvent]) -> list[Visit]:
    known = DealVisits()
    advance_visits(known, events)
    return known.visits


def notices(events: Iterable[DealEvent]) -> list[tuple[str, str | None, datetime]]:
    return [(e.type, e.stage, e.at) for e in events if isinstance(e, COUNTED + TOUCHING)]


def day(t: datetime) -> int:
    return (t - EPOCH) // DAY


def day_start(b: int) -> datetime:
    return EPOCH + b * DAY


def _us(d: timedelta) -> int:
    return d // US


@dataclass
class _Seen:
    """A visit as it stood at the instant asked about (store.metrics' `m_visits`)."""

    stage: str
    visit_no: int
    exit_type: str | None
    lost_reason: str | None
    skipped: list[str] | None
    completed: bool
    first_back: bool
    first_next: bool
    last_visit: bool
    us: int | None
    cum_us: int | None
    left_at: datetime | None


def _seen(v: Visit, t: datetime | None) -> _Seen:
    left = v.exit_at is not None and (t is None or v.exit_at <= t)
    us = _us(v.exit_at - v.entered_at) if left and v.exit_at is not None else None
    return _Seen(
        stage=v.stage,
        visit_no=v.visit_no,
        exit_type=v.exit_type if left else None,
        lost_reason=v.lost_reason if left else None,
        skipped=v.skipped if left else None,
        completed=v.first_completion and v.completed_at is not None and (t is None or v.completed_at <= t),
        first_back=v.first_back and left,
        first_next=v.first_next and left,
        last_visit=v.next_entry_at is None or (t is not None and v.next_entry_at > t),
        us=us,
        # the earlier visits' time, as stored (seconds), back in whole microseconds
        cum_us=None if us is None else round(v.cum_before * 1e6) + us,
        left_at=v.exit_at if left else None,
    )


def figures(facts: DealFacts, layout: Layout, t: datetime | None) -> Figures:
    """The deal's contribution to every figure, counting what happened at or before `t` (None:
    everything), with the definitions of store.metrics."""
    out: Figures = Counter()
    if facts.started_at is None or (t is not None and facts.started_at > t):
        return out
    rows = [_seen(v, t) for v in facts.visits if t is None or v.entered_at <= t]
    # how far the deal got after each visit: a later visit's position, or won (since entering)
    reach: list[int | None] = [None] * len(rows)
    furthest: int | None = None
    won = False
    for i in range(len(rows) - 1, -1, -1):
        won = won or rows[i].exit_type == "won"
        reach[i] = max((p for p in (furthest, WON_REACH if won else None) if p is not None), default=None)
        p = layout.pos.get(rows[i].stage)
        if p is not None:
            furthest = p if furthest is None else max(furthest, p)
    for r, after in zip(rows, reach, strict=True):
        p = layout.pos.get(r.stage)
        if p is None:
            continue
        s = r.stage
        first = r.visit_no == 1
        for kind, happened in (
            (Kind.ENTERED, first),
            (Kind.COMPLETED, r.completed),
            (Kind.MOVED_BACK, r.first_back),
            (Kind.LOST, r.exit_type == "lost"),
            (Kind.STRICT_NEXT, r.first_next),
            (Kind.STRICT_WON, r.exit_type == "won"),
            (Kind.LATER, first and after is not None and after > p),
        ):
            if happened:
                out[(kind, s, "", 0.0)] += 1
        if r.exit_type == "lost":
            out[(Kind.REASON, s, r.lost_reason or "", 0.0)] += 1
        if r.us is not None and first:
            out[(Kind.FIRST, s, "", float(r.us))] += 1
        if r.cum_us is not None and r.last_visit:
            out[(Kind.CUMULATIVE, s, "", float(r.cum_us))] += 1
    for s in {x for r in rows for x in r.skipped or ()}:
        if s in layout.pos:
            out[(Kind.SKIPPED, s, "", 0.0)] += 1
    for phase in layout.phases:
        mine = [(r, after) for r, after in zip(rows, reach, strict=True) if layout.phase_of.get(r.stage) == phase]
        if not mine:
            continue
        out[(Kind.PHASE_ENTERED, phase, "", 0.0)] += 1
        if any(after is not None and after > layout.phase_last[phase] for _, after in mine):
            out[(Kind.PHASE_CONVERTED, phase, "", 0.0)] += 1
        if all(r.us is not None for r, _ in mine):
            out[(Kind.PHASE_TIME, phase, "", float(sum(r.us or 0 for r, _ in mine)))] += 1
    counted = [(what, stage, at) for what, stage, at in facts.notices if t is None or at <= t]
    touches = facts.touches + sum(what == "TouchSent" for what, _, _ in counted)
    cadence = facts.cadence or any(what == "CadenceStarted" for what, _, _ in counted)
    current = rows[-1] if rows else None
    ends: list[_Seen | None] = [r for r in rows if r.exit_type in ("won", "lost")]
    for end in ends or [None]:
        out[(Kind.DEALS, "", "", 0.0)] += 1
        if end is None or end.left_at is None:
            if current is not None and current.stage in layout.pos:
                out[(Kind.PIPELINE, current.stage, "", facts.value or 0.0)] += 1
        else:
            out[(Kind.WON if end.exit_type == "won" else Kind.LOST_DEALS, "", "", 0.0)] += 1
            out[(Kind.CYCLE, "", "", float(_us(end.left_at - facts.started_at)))] += 1
            if end.exit_type == "won" and touches:
                out[(Kind.WON_TOUCHES, "", "", 0.0)] += touches
        if cadence:
            out[(Kind.WITH_CADENCE, "", "", 0.0)] += 1
            if touches >= 5:
                out[(Kind.FIVE_PLUS, "", "", 0.0)] += 1
    for what, stage, _ in counted:
        if what in NOTICE_KINDS and stage in layout.pos:
            out[(NOTICE_KINDS[what], str(stage), "", 0.0)] += 1
    return out


def difference(after: Figures, before: Figures) -> Figures:
    """after - before, signed, without the keys that cancel."""
    out: Figures = Counter()
    for k in after.keys() | before.keys():
        n = after.get(k, 0) - before.get(k, 0)
        if n:
            out[k] = n
    return out


def _steps(facts: DealFacts, layout: Layout, start: Figures, days: Iterable[int]) -> tuple[dict[int, Figures], Figures]:
    """What changes in each day, from `start` (the figures at the day's end minus those before),
    and the figures at the end of the last day: every figure, when no instant is later."""
    out: dict[int, Figures] = {}
    previous = start
    for b in sorted(set(days)):
        now = figures(facts, layout, day_start(b + 1) - US)
        change = difference(now, previous)
        if change:
            out[b] = change
        previous = now
    return out, previous


@dataclass
class Contribution:
    """Rows to add: totals by key, and day steps by (start day, day, key)."""

    totals: Figures = field(default_factory=Counter)
    steps: dict[tuple[int, int], Figures] = field(default_factory=dict)

    def add(self, other: Contribution, sign: int = 1) -> None:
        for k, n in other.totals.items():
            self.totals[k] += sign * n
        for b, rows in other.steps.items():
            mine = self.steps.setdefault(b, Counter())
            for k, n in rows.items():
                mine[k] += sign * n


def contributions(facts: DealFacts, layout: Layout | None) -> Contribution:
    """Everything a deal adds, from scratch (the back-fill, the benchmark loader, a rewrite)."""
    if layout is None or facts.started_at is None:
        return Contribution()
    sb = day(facts.started_at)
    steps, final = _steps(facts, layout, Counter(), (day(t) for t in facts.instants()))
    return Contribution(final, {(sb, b): rows for b, rows in steps.items()})


def step(before: DealFacts, after: DealFacts, layout: Layout | None, new: Iterable[datetime]) -> Contribution:
    """What new events add, when none of them is earlier than anything `before` holds.

    Then the figures before the first new instant are unchanged, and from it on `before` stands
    as it was at its end: only the days of the new instants get rows.
    """
    if layout is None or after.started_at is None:
        return Contribution()
    base = figures(before, layout, None)
    steps, final = _steps(after, layout, base, (day(t) for t in new))  # the last new instant is the latest
    sb = day(after.started_at)
    return Contribution(difference(final, base), {(sb, b): rows for b, rows in steps.items()})
