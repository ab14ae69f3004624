"""Metric aggregates: every deal's contribution to the figures, summed as the log is appended.

The metrics are sums over deals: counts of deals, counts of events, a sum of values (the
pipeline), and values whose medians are taken (durations in microseconds, kept as histograms:
value, how many). So each deal's figures, as they stood at any instant, can be added into small
tables once, in the transaction that appends its events, and a query adds rows instead of
re-reading the history.

`figures` computes a deal's figures as of an instant, as the SQL of `store.metrics` does over the
projections (both are checked against a plain Python computation in tests/test_metrics.py). It
is a pure function of the deal's visits (`store.visits`), its touches and notices, and the stage
layout of its process version (stage order and phases: what "later" and "in a phase" mean).
The figures change only at the deal's event instants, so they are stored as steps:

- `metric_groups`: the groups of deals the metrics tell apart (process, layout, starting version,
  current version, starting owner, experiment), and per process and layout a rollup of them.
- `metric_totals`: the figures of every deal as they stand now, per group and per rollup; the
  rollup also keeps each histogram in coarse bins (`bin_of`), so that the unfiltered metrics
  read a few bins and the values of one bin per percentile.
- `metric_buckets`: the same per group, split by the UTC day the deal started (`sb`) and the UTC
  day of the change (`eb`, signed: a visit's cumulative time counts from its exit until the
  stage is entered again). Summing the rows with `eb` before a day gives the figures as they
  stood at the start of that day; a start window sums whole start days.
- `deal_metric_state`: what the next append of the deal goes on from.

`store.metrics` computes the partial days at the edges of a window or of `--as-of` from the
projections, for the few deals concerned (see there). Deals whose process version has no
deployed definition, or a layout other than the definition asked about, are also computed from
the projections: their rows are grouped apart.

`contributions` (a deal's history at once: the back-fill of the migration, the benchmark loader,
a deal's rows rewritten) and `step` (a new batch: the append) are the two ways rows are made;
both go through `figures`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum

import asyncpg

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
    decode_stored,
)
from store.visits import VISIT_FIELDS, Conn, DealVisits, Visit, VisitChange
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

# events that change a deal's figures beyond one count of their own, and those that are such a count
_CORE = (DealStarted, StageEntered, StageCompleted, StageSkipped, DealWon, DealLost, DealClosed, MigratedToVersion)
_TOUCHING = (TouchSent, CadenceStarted)
_COUNTED = (SlaBreached, ReminderSent, Escalated)
_RELEVANT = _CORE + _TOUCHING + _COUNTED


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
    return [(e.type, e.stage, e.at) for e in events if isinstance(e, _COUNTED + _TOUCHING)]


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


# --- kept in the database --------------------------------------------------------------------

COARSE = 100  # added to a histogram's kind: its coarse rows (totals only), x the bin, s the values' sum

StoredKey = tuple[int, str, str, float]  # kind, stage, detail, x: a row's key in its table and group


def bin_of(x: int) -> int:
    """A value's coarse bin, 16 to each doubling: bin 32 * e + m holds [m * 2**e, (m + 1) * 2**e)
    (below 32, the value itself; every negative value, -1). `store.metrics` finds the bin that
    holds a percentile's rank from these few rows, then the value among the bin's own rows."""
    if x < 0:
        return -1
    e = max(x.bit_length() - 5, 0)
    return 32 * e + (x >> e)


def stored(key: Key, n: int, *, coarse: bool) -> list[tuple[StoredKey, int, float]]:
    """The rows (key, n, s) that `n` of a figure's key go to."""
    kind, stage, detail, x = key
    if kind == Kind.PIPELINE:  # per stage: how many open deals, and their value added up
        return [((kind, stage, detail, 0.0), n, x * n)]
    rows = [((kind, stage, detail, x), n, 0.0)]
    if coarse and kind in HISTOGRAMS:
        rows.append(((kind + COARSE, stage, detail, float(bin_of(int(x)))), n, x * n))
    return rows


@dataclass(frozen=True)
class Group:
    """The deal attributes the metrics filter on, besides the start day: one row set per group."""

    process: str
    layout: str | None  # Layout.text; None when the version's definition is not deployed
    start_version: str | None
    version: str | None  # None only in a rollup
    start_owner: str | None
    experiment: str | None

    def rollup(self) -> Group | None:
        """The group whose totals sum every deal of the process with this layout (unfiltered metrics)."""
        if self.layout is None or self.version is None:  # no figures kept, or a rollup itself
            return None
        return Group(self.process, self.layout, None, None, None, None)


@dataclass
class Held:
    """What the aggregates already hold of a deal (table `deal_metric_state`)."""

    gid: int
    rollup: int | None
    group: Group
    started_at: datetime | None
    value: float | None
    touches: int
    cadence: bool
    last_at: datetime | None


_PARSED: dict[str, Layout] = {}


def parsed(text: str | None) -> Layout | None:
    if text is None:
        return None
    if text not in _PARSED:
        _PARSED[text] = Layout.parse(text)
    return _PARSED[text]


_LAYOUTS: dict[tuple[str, str, str], Layout] = {}


async def layout_of(conn: Conn, process: str, version: str) -> Layout | None:
    """The layout of a deployed version (None: not deployed), parsed once per content."""
    content = await conn.fetchval(
        "SELECT content_hash FROM definitions WHERE name = $1 AND version = $2", process, version
    )
    if content is None:
        return None
    key = (process, version, content)
    if key not in _LAYOUTS:
        body = await conn.fetchval("SELECT body FROM definitions WHERE name = $1 AND version = $2", process, version)
        _LAYOUTS[key] = Layout.of(ProcessDefinition.model_validate_json(body))
    return _LAYOUTS[key]


_GROUP_COLUMNS = ("process", "layout", "start_version", "version", "start_owner", "experiment")
_FIND_GROUP = "SELECT gid FROM metric_groups WHERE " + " AND ".join(
    f"{c} IS NOT DISTINCT FROM ${i + 1}" for i, c in enumerate(_GROUP_COLUMNS)
)
_ADD_GROUP = (
    f"INSERT INTO metric_groups ({', '.join(_GROUP_COLUMNS)}, rollup) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT DO NOTHING RETURNING gid"
)


async def _group_id(conn: Conn, g: Group, rollup: int | None) -> int:
    dims = [getattr(g, c) for c in _GROUP_COLUMNS]
    for _ in range(3):
        found = await conn.fetchval(_FIND_GROUP, *dims)
        if found is None:  # a new group; a concurrent append may be adding it too: then read it again
            found = await conn.fetchval(_ADD_GROUP, *dims, rollup)
        if found is not None:
            return int(found)
    raise RuntimeError(f"metric group {g} could neither be found nor added")


async def group_ids(conn: Conn, g: Group) -> tuple[int, int | None]:
    """The group's id and its rollup's, adding them when new."""
    r = g.rollup()
    rollup = None if r is None else await _group_id(conn, r, None)
    return await _group_id(conn, g, rollup), rollup


_READ = f"""
SELECT s.gid, g.rollup, s.started_at, s.value, s.touches, s.cadence, s.last_at,
       {", ".join(f"g.{c}" for c in _GROUP_COLUMNS)}, {", ".join(f"v.{f} AS v_{f}" for f in VISIT_FIELDS)}
FROM (SELECT $1::text AS deal_id) d
LEFT JOIN deal_metric_state s ON s.deal_id = d.deal_id
LEFT JOIN metric_groups g ON g.gid = s.gid
LEFT JOIN stage_visits v ON v.deal_id = d.deal_id AND $2
ORDER BY v.seq
"""


async def read(conn: Conn, deal_id: str, *, visits: bool) -> tuple[Held | None, DealVisits | None]:
    """What `project` goes on from, in one round trip: what the aggregates hold of the deal, and
    (when `visits`) its visits, for `store.visits.project`."""
    rows = await conn.fetch(_READ, deal_id, visits)
    r = rows[0]
    state = None
    if r["gid"] is not None:
        state = Held(
            gid=r["gid"],
            rollup=r["rollup"],
            group=Group(*(r[c] for c in _GROUP_COLUMNS)),
            started_at=r["started_at"],
            value=r["value"],
            touches=r["touches"],
            cadence=r["cadence"],
            last_at=r["last_at"],
        )
    if not visits:
        return state, None
    known = [Visit(**{f: r[f"v_{f}"] for f in VISIT_FIELDS}) for r in rows if r["v_seq"] is not None]
    return state, DealVisits(known)


def counted(new: Iterable[DealEvent]) -> bool:
    """Whether any of these new events counts in a figure (else `project` has nothing to do)."""
    return any(isinstance(e, _RELEVANT) for e in new)


def needs_visits(new: Iterable[DealEvent]) -> bool:
    """Whether `project` needs the deal's visits for these new events (not for counts alone)."""
    return any(isinstance(e, _CORE + _TOUCHING) for e in new)


class Rows:
    """Signed rows for the aggregate tables, summed by key: [n, s] each."""

    def __init__(self) -> None:
        self.totals: defaultdict[tuple[int, StoredKey], list[float]] = defaultdict(lambda: [0, 0.0])
        self.steps: defaultdict[tuple[int, int, int, StoredKey], list[float]] = defaultdict(lambda: [0, 0.0])

    def add(self, gid: int, rollup: int | None, c: Contribution, sign: int = 1) -> None:
        """A deal's contribution to its group, and its histograms' coarse bins to the group's
        rollup (the values themselves are found among the groups' rows)."""
        for k, n in c.totals.items():
            for key, rn, rs in stored(k, sign * n, coarse=True):
                for g in (gid, rollup) if key[0] > COARSE else (gid,):
                    if g is not None:
                        row = self.totals[(g, key)]
                        row[0] += rn
                        row[1] += rs
        for (sb, eb), figures in c.steps.items():
            for k, n in figures.items():
                for key, rn, rs in stored(k, sign * n, coarse=False):
                    row = self.steps[(gid, sb, eb, key)]
                    row[0] += rn
                    row[1] += rs

    def total_records(self) -> list[tuple[object, ...]]:
        # in key order, so that concurrent appends lock shared rows in the same order (no deadlock)
        return sorted((g, *key, int(n), s) for (g, key), (n, s) in self.totals.items() if n or s)

    def step_records(self) -> list[tuple[object, ...]]:
        return sorted((g, sb, eb, *key, int(n), s) for (g, sb, eb, key), (n, s) in self.steps.items() if n or s)


_WRITE = """
WITH totals AS (
    INSERT INTO metric_totals AS m (gid, kind, stage, detail, x, n, s)
    SELECT * FROM unnest($1::int[], $2::smallint[], $3::text[], $4::text[], $5::float8[], $6::bigint[], $7::float8[])
    ON CONFLICT (gid, kind, stage, detail, x) DO UPDATE SET n = m.n + EXCLUDED.n, s = m.s + EXCLUDED.s
), steps AS (
    INSERT INTO metric_buckets AS m (gid, sb, eb, kind, stage, detail, x, n, s)
    SELECT * FROM unnest($8::int[], $9::int[], $10::int[], $11::smallint[], $12::text[], $13::text[], $14::float8[],
                         $15::bigint[], $16::float8[])
    ON CONFLICT (gid, sb, eb, kind, stage, detail, x) DO UPDATE SET n = m.n + EXCLUDED.n, s = m.s + EXCLUDED.s
)
INSERT INTO deal_metric_state (deal_id, gid, started_at, value, touches, cadence, last_at)
VALUES ($17, $18, $19, $20, $21, $22, $23)
ON CONFLICT (deal_id) DO UPDATE SET gid = EXCLUDED.gid, started_at = EXCLUDED.started_at, value = EXCLUDED.value,
    touches = EXCLUDED.touches, cadence = EXCLUDED.cadence, last_at = EXCLUDED.last_at
"""


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    return [[r[i] for r in rows] for i in range(width)]


async def project(
    conn: Conn,
    deal_id: str,
    process: str,
    version: str,
    new: Sequence[DealEvent],
    change: VisitChange | None,
    state: Held | None,
) -> None:
    """Fold the deal's newly appended events into the aggregates (inside the append's transaction).

    `state` is what `read` found; `change` holds the deal's visits before and after the new
    events (`store.visits.project`), when `needs_visits` said they are needed.
    """
    relevant = [e for e in new if isinstance(e, _RELEVANT)]
    if not relevant:
        return  # proposals, scheduled touches, handoffs: no figure counts them
    started = next((e for e in relevant if isinstance(e, DealStarted)), None)
    if state is not None and (state.group.process, state.group.version) == (process, version) and state.group.layout:
        gid, rollup, group = state.gid, state.rollup, state.group  # a version's definition never changes
    else:
        layout = await layout_of(conn, process, version)
        group = Group(
            process=process,
            layout=None if layout is None else layout.text,
            start_version=started.version if started else state.group.start_version if state else None,
            version=version,
            start_owner=started.owner if started else state.group.start_owner if state else None,
            experiment=started.experiment if started else state.group.experiment if state else None,
        )
        if state is not None and state.group == group:
            gid, rollup = state.gid, state.rollup
        else:
            gid, rollup = await group_ids(conn, group)
    rows = Rows()
    migrated = any(isinstance(e, MigratedToVersion) for e in new)
    if state is None:
        in_step = started is not None and started.seq == 1  # a new deal: nothing was added for it yet
    else:
        in_step = state.gid == gid and (state.last_at is None or min(e.at for e in relevant) >= state.last_at)
    if in_step and not migrated:
        before = DealFacts(
            state.started_at if state else None,
            state.value if state else None,
            change.before if change else [],
            touches=state.touches if state else 0,
            cadence=state.cadence if state else False,
        )
        after = replace(
            before,
            started_at=started.at if started else before.started_at,
            value=started.value if started else before.value,
            visits=change.after if change else [],
            notices=notices(relevant),
        )
        rows.add(gid, rollup, step(before, after, parsed(group.layout), (e.at for e in relevant)))
    else:
        # a migration rewrote the deal's stages, its version's layout became known, or events came
        # out of time order: take back what the deal added, from its logged events, and add it anew
        logged = [
            decode_stored(r["payload"])
            for r in await conn.fetch("SELECT payload FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal_id)
        ]
        seqs = {e.seq for e in new}
        if state is not None:
            earlier = DealFacts.of([e for e in logged if e.seq not in seqs])
            rows.add(state.gid, state.rollup, contributions(earlier, parsed(state.group.layout)), -1)
        after = DealFacts.of(logged)
        rows.add(gid, rollup, contributions(after, parsed(group.layout)))
    instants = after.instants() | ({state.last_at} if state is not None and state.last_at is not None else set())
    touches = after.touches + sum(what == "TouchSent" for what, _, _ in after.notices)
    cadence = after.cadence or any(what == "CadenceStarted" for what, _, _ in after.notices)
    await conn.execute(
        _WRITE,
        *_columns(rows.total_records(), 7),
        *_columns(rows.step_records(), 9),
        deal_id,
        gid,
        after.started_at,
        after.value,
        touches,
        cadence,
        max(instants, default=None),
    )


# --- the back-fill -----------------------------------------------------------------------------


class Backfill:
    """Deals' rows from scratch, for deals the aggregates do not hold yet: the migration that adds
    the tables, histories written to the log in bulk (`store.history_load`), and the benchmark
    loader.

    Deals are added one at a time, by a pure function of their events. Their day steps and states
    go to temporary tables in chunks and are summed into the aggregates at the end, with the
    totals (few rows, summed here). A group not seen before gets a negative id here, and its real
    id when the rows are written (a live append may be adding the same group meanwhile).
    """

    CHUNK = 200_000

    def __init__(self, layouts: dict[tuple[str, str], Layout], groups: dict[Group, tuple[int, int | None]]):
        self.layouts = layouts
        self.groups = dict(groups)  # group: (gid, rollup's gid)
        self.states: list[tuple[object, ...]] = []
        self.rows = Rows()
        self.staged = False

    @classmethod
    async def start(cls, conn: Conn) -> Backfill:
        layouts = {}
        for r in await conn.fetch("SELECT name, version, content_hash FROM definitions"):
            layout = await layout_of(conn, r["name"], r["version"])
            if layout is not None:
                layouts[(r["name"], r["version"])] = layout
        groups = {
            Group(*(r[c] for c in _GROUP_COLUMNS)): (r["gid"], r["rollup"])
            for r in await conn.fetch(f"SELECT gid, rollup, {', '.join(_GROUP_COLUMNS)} FROM metric_groups")
        }
        return cls(layouts, groups)

    def _ids(self, g: Group) -> tuple[int, int | None]:
        if g not in self.groups:
            r = g.rollup()
            rollup = None if r is None else self._ids(r)[0]
            self.groups[g] = (-1 - sum(gid < 0 for gid, _ in self.groups.values()), rollup)
        return self.groups[g]

    def add(self, deal_id: str, process: str, version: str, events: Sequence[DealEvent]) -> None:
        """One deal's events, in order; `process` and `version` as its last append had them."""
        if not any(isinstance(e, _RELEVANT) for e in events):
            return
        started = next((e for e in events if isinstance(e, DealStarted)), None)
        layout = self.layouts.get((process, version))
        gid, rollup = self._ids(
            Group(
                process=process,
                layout=None if layout is None else layout.text,
                start_version=started.version if started else None,
                version=version,
                start_owner=started.owner if started else None,
                experiment=started.experiment if started else None,
            )
        )
        facts = DealFacts.of(events)
        self.rows.add(gid, rollup, contributions(facts, layout))
        touches = sum(kind == "TouchSent" for kind, _, _ in facts.notices)
        cadence = any(kind == "CadenceStarted" for kind, _, _ in facts.notices)
        self.states.append((deal_id, gid, facts.started_at, facts.value, touches, cadence, max(facts.instants())))

    async def flush(self, conn: Conn, *, final: bool = False) -> None:
        """Move the day steps and deal states gathered so far to the database, when they are many
        (or `final`)."""
        if not final and len(self.rows.steps) + len(self.states) < self.CHUNK:
            return
        if not self.staged:
            await conn.execute(
                "CREATE TEMP TABLE metric_buckets_load (LIKE metric_buckets);"
                " CREATE TEMP TABLE metric_totals_load (LIKE metric_totals);"
                " CREATE TEMP TABLE deal_metric_state_load (LIKE deal_metric_state)"
            )
            self.staged = True
        await conn.copy_records_to_table(
            "metric_buckets_load", records=self.rows.step_records(), columns=_BUCKET_COLUMNS
        )
        await conn.copy_records_to_table("deal_metric_state_load", records=self.states, columns=_STATE_COLUMNS)
        self.rows.steps.clear()
        self.states = []

    async def finish(self, conn: Conn) -> None:
        """Add the new groups, then the totals, the staged steps and the deals' states."""
        real: dict[int, int] = {}
        for g, (gid, rollup) in sorted(self.groups.items(), key=lambda item: -item[1][0]):  # rollups first
            if gid < 0:
                real[gid] = await _group_id(conn, g, real.get(rollup, rollup) if rollup is not None else None)
                self.groups[g] = (real[gid], real.get(rollup, rollup) if rollup is not None else None)
        await self.flush(conn, final=True)
        await conn.copy_records_to_table(
            "metric_totals_load", records=self.rows.total_records(), columns=_TOTAL_COLUMNS
        )
        mapping = [list(real), list(real.values())]
        for table, columns in (
            ("metric_totals", _TOTAL_COLUMNS),
            ("metric_buckets", _BUCKET_COLUMNS),
            ("deal_metric_state", _STATE_COLUMNS),
        ):
            if table == "deal_metric_state":
                rest = ", ".join(columns[2:])
                values, conflict = f"l.deal_id, coalesce(m.real, l.gid), {rest} FROM {table}_load l", ""
            else:
                key = ", ".join(columns[1:-2])
                values = f"coalesce(m.real, l.gid), {key}, sum(n), sum(s) FROM {table}_load l"
                conflict = (
                    f" GROUP BY 1, {key} HAVING sum(n) <> 0 OR sum(s) <> 0"
                    f" ON CONFLICT (gid, {key}) DO UPDATE SET n = t.n + EXCLUDED.n, s = t.s + EXCLUDED.s"
                )
            await conn.execute(
                f"INSERT INTO {table} AS t ({', '.join(columns)}) SELECT {values}"
                " LEFT JOIN unnest($1::int[], $2::int[]) AS m(local, real) ON m.local = l.gid" + conflict,
                *mapping,
            )
            await conn.execute(f"DROP TABLE {table}_load")
        self.staged = False
        self.rows.totals.clear()


_TOTAL_COLUMNS = ("gid", "kind", "stage", "detail", "x", "n", "s")
_BUCKET_COLUMNS = ("gid", "sb", "eb", "kind", "stage", "detail", "x", "n", "s")
_STATE_COLUMNS = ("deal_id", "gid", "started_at", "value", "touches", "cadence", "last_at")


async def _add_logged(conn: Conn, fill: Backfill, rows: AsyncIterator[asyncpg.Record]) -> None:
    """Add the deals whose events `rows` holds (deal_id, process, version, payload; by deal, in order)."""
    deal: tuple[str, str, str] | None = None
    events: list[DealEvent] = []
    async for r in rows:
        if deal is None or r["deal_id"] != deal[0]:
            if deal is not None:
                fill.add(*deal, events)
                await fill.flush(conn)
            events = []
        deal = (r["deal_id"], r["process"], r["version"])  # the last row's: the deal's last append
        events.append(decode_stored(r["payload"]))
    if deal is not None:
        fill.add(*deal, events)
    await fill.finish(conn)


async def rebuild(conn: Conn) -> int:
    """Recompute the aggregates from the log (the migration that adds them); return the deals."""
    await conn.execute("TRUNCATE metric_totals, metric_buckets, deal_metric_state, metric_groups RESTART IDENTITY")
    rows = conn.cursor("SELECT deal_id, process, version, payload FROM deal_events ORDER BY deal_id, seq")
    await _add_logged(conn, await Backfill.start(conn), rows.__aiter__())
    return int(await conn.fetchval("SELECT count(*) FROM deal_metric_state"))


async def add_logged(conn: Conn, deal_ids: Sequence[str]) -> None:
    """Add deals whose whole histories were just written to the log in bulk (in this transaction)."""

    async def rows() -> AsyncIterator[asyncpg.Record]:
        for r in await conn.fetch(
            "SELECT deal_id, process, version, payload FROM deal_events WHERE deal_id = ANY($1::text[])"
            " ORDER BY deal_id, seq",
            list(deal_ids),
        ):
            yield r

    await _add_logged(conn, await Backfill.start(conn), rows())
