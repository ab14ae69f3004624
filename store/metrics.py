"""Sales metrics computed in SQL, for one process (and optionally a version, an owner, a start
window and an instant to look back from).

They add up rows of the aggregates kept with the event log (`store.aggregates`): each deal's
contribution to every figure, summed per group of deals the filters tell apart, in total and by
day. What the aggregates cannot give is computed from the projections kept with the log
(`deal_metric_state`, `stage_visits` and, through a partial index, the few event types counted
one by one), into rows of the same kinds, for the few deals concerned: the deals that started on
a day the start window cuts, the deals with events on the day of `as_of` before it (their
figures at that instant, minus those at the start of the day), and the deals whose version has
no deployed definition or another stage layout than the definition asked about. So the filters
stay exact, and the unfiltered metrics read a few thousand rows however long the log is.

Definitions (the README repeats them; `tests/store/test_metrics.py` checks each against a plain
Python computation over the same events):

- The deal set: deals of the process whose DealStarted falls in [since, until), optionally of
  one version (started on it, or migrated to it) and one starting owner, counting only events
  at or before `as_of`.
- Per stage: *entered*, *completed*, *moved back* (out of it) and *lost* (at it) count deals with
  at least one such event; *skipped* counts deals that jumped over it; *lost reasons* count
  DealLost events by reason; *converted strict* counts deals that completed it into the next
  stage (StageEntered of the next stage with via=next; for the last pre-sale stage, DealWon at
  it); *converted any later* counts deals that, after entering it, entered any later stage or
  were won. Conversions are shares of *entered*.
- Time in stage: a visit runs from a StageEntered to the deal's next StageEntered, DealWon,
  DealLost or DealClosed; visits still open at `as_of` are left out. *First entry* is each
  deal's first visit; *cumulative* sums all of a deal's finished visits (re-entries included),
  for deals with no visit still open. Median and p90 use linear interpolation
  (`percentile_cont`).
- Per phase: the same, over the phase's stages; a deal converts when it later enters a stage of a
  later phase or is won.
- Deal set: won, lost, open; win rate = won / (won + lost); cycle time from DealStarted to
  DealWon or DealLost; weighted pipeline = sum over open deals of value x the probability of the
  stage they are in; touches per won deal; the share of deals with a cadence that got five or
  more touches; reminders, escalations and SLA breaches per stage.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import asyncpg
from pydantic import BaseModel

from definitions.model import ProcessDefinition
from store.aggregates import COARSE, US, Kind, Layout, day, day_start
from store.visits import Conn


class Durations(BaseModel):
    n: int
    median: float | None
    p90: float | None
    mean: float | None


class StageMetrics(BaseModel):
    stage: str
    phase: str
    entered: int
    completed: int
    skipped: int
    moved_back: int
    lost: int
    lost_reasons: dict[str, int]
    converted_strict: int
    converted_any_later: int
    conversion_strict: float | None
    conversion_any_later: float | None
    first_entry: Durations
    cumulative: Durations
    sla_breaches: int
    reminders: int
    escalations: int


class PhaseMetrics(BaseModel):
    phase: str
    entered: int
    lost: int
    converted: int
    conversion: float | None
    time_in_phase: Durations


class DealSetMetrics(BaseModel):
    deals: int
    won: int
    lost: int
    open: int
    win_rate: float | None
    cycle_time: Durations
    weighted_pipeline: float
    touches_per_won_deal: float | None
    deals_with_cadence: int
    share_five_or_more_touches: float | None


class Filters(BaseModel):
    process: str
    version: str | None = None
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    experiment: str | None = None


class Metrics(BaseModel):
    filters: Filters
    stages: list[StageMetrics]
    phases: list[PhaseMetrics]
    deals: DealSetMetrics


WORK_MEM = "256MB"

_STAGES = """
CREATE TEMP TABLE m_stages ON COMMIT DROP AS
SELECT s.stage, s.pos, p.phase, max(s.pos) OVER (PARTITION BY p.phase) AS phase_last_pos
FROM unnest($1::text[]) WITH ORDINALITY AS s(stage, pos)
JOIN unnest($2::text[]) WITH ORDINALITY AS p(phase, pos) USING (pos)
"""

_GROUPS = """
SELECT gid, coalesce(layout = $5, false) AS aggregated FROM metric_groups
WHERE process = $1 AND version IS NOT NULL AND ($2::text IS NULL OR start_version = $2 OR version = $2)
  AND ($3::text IS NULL OR start_owner = $3) AND ($4::text IS NULL OR experiment = $4)
"""

_ROLLUP = "SELECT gid FROM metric_groups WHERE process = $1 AND layout = $2 AND version IS NULL"

# The deals computed from the projections: those of groups the aggregates do not hold under this
# layout ($1), and of the others ($2) those that started on a day the window cuts ([$3, $6) and
# [$7, $4)), and those with events on the day of the instant looked from, before it ($8 to $5):
# for these last (`edge`) the figures before that day are subtracted again.
_SUBSET = """
CREATE TEMP TABLE m_subset ON COMMIT DROP AS
SELECT deal_id, started_at, value, false AS edge FROM deal_metric_state
WHERE gid = ANY($1::int[]) AND started_at >= $3 AND started_at < $4 AND started_at <= $5
UNION ALL
SELECT deal_id, started_at, value, false FROM deal_metric_state
WHERE gid = ANY($2::int[]) AND started_at >= $3 AND started_at < $4 AND started_at <= $5
  AND (started_at < $6 OR started_at >= $7)
UNION ALL
SELECT deal_id, started_at, value, true FROM deal_metric_state
WHERE $8::timestamptz IS NOT NULL AND gid = ANY($2::int[]) AND started_at >= $6 AND started_at < $7
  AND deal_id IN (SELECT deal_id FROM deal_events WHERE occurred_at >= $8 AND occurred_at <= $5 AND process = $9)
"""

# Each deal's figures as they stood at $1, computed from the projections and added to m_parts
# with the sign $2, in the rows of store.aggregates (and exactly as `store.aggregates.figures`).
_RAW = [
    """CREATE TEMP TABLE m_scope ON COMMIT DROP AS
    SELECT deal_id, started_at, value FROM m_subset WHERE started_at <= $1 /*edge*/""",
    "ANALYZE m_scope",
    """CREATE TEMP TABLE m_visits ON COMMIT DROP AS
    SELECT deal_id, stage, pos, phase, phase_last_pos, seq, visit_no, left_at, exit_type, lost_reason, skipped,
           completed, first_back, first_next, last_visit, us, cum_before_us + us AS cum_us,
           row_number() OVER since_entry = 1 AS deal_last,
           -- the furthest the deal gets after entering: a later visit's position, or "won"
           greatest(max(pos) OVER later, CASE WHEN bool_or(exit_type = 'won') OVER since_entry THEN 1000000 END)
               AS reach_after
    FROM (
        -- the visits as they stood at $1: an exit after it has not happened yet
        SELECT v.deal_id, v.stage, st.pos, st.phase, st.phase_last_pos, v.seq, v.visit_no,
               CASE WHEN v.exit_at <= $1 THEN v.exit_at END AS left_at,
               CASE WHEN v.exit_at <= $1 THEN v.exit_type END AS exit_type,
               CASE WHEN v.exit_at <= $1 THEN v.lost_reason END AS lost_reason,
               CASE WHEN v.exit_at <= $1 THEN v.skipped END AS skipped,
               v.first_completion AND v.completed_at <= $1 AS completed,
               v.first_back AND v.exit_at <= $1 AS first_back,
               v.first_next AND v.exit_at <= $1 AS first_next,
               v.next_entry_at IS NULL OR v.next_entry_at > $1 AS last_visit,
               CASE WHEN v.exit_at <= $1 THEN (extract(epoch FROM v.exit_at - v.entered_at) * 1000000)::bigint END
                   AS us,
               round(v.cum_before * 1000000::float8)::bigint AS cum_before_us
        FROM stage_visits v JOIN m_scope USING (deal_id) LEFT JOIN m_stages st ON st.stage = v.stage
        WHERE v.entered_at <= $1
    ) seen
    -- newest first, so each frame only grows: every aggregate is computed incrementally
    WINDOW later AS (PARTITION BY deal_id ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           since_entry AS (PARTITION BY deal_id ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)""",
    """CREATE TEMP TABLE m_notices ON COMMIT DROP AS
    SELECT e.deal_id, e.type, e.stage FROM deal_events e
    WHERE e.process = $3 AND e.occurred_at <= $1 AND e.deal_id IN (SELECT deal_id FROM m_scope)
      AND e.type IN ('TouchSent', 'CadenceStarted', 'SlaBreached', 'ReminderSent', 'Escalated')""",
    """INSERT INTO m_parts
    SELECT k.kind, v.stage, '', 0, $2::int * sum(k.n)
    FROM m_visits v CROSS JOIN LATERAL (VALUES
        (%(ENTERED)s, (v.visit_no = 1)::int), (%(COMPLETED)s, v.completed::int), (%(MOVED_BACK)s, v.first_back::int),
        (%(LOST)s, (v.exit_type = 'lost')::int), (%(STRICT_NEXT)s, v.first_next::int),
        (%(STRICT_WON)s, (v.exit_type = 'won')::int), (%(LATER)s, (v.visit_no = 1 AND v.reach_after > v.pos)::int)
    ) AS k(kind, n)
    WHERE v.pos IS NOT NULL GROUP BY k.kind, v.stage HAVING sum(k.n) > 0""",
    """INSERT INTO m_parts
    SELECT %(REASON)s, stage, coalesce(lost_reason, ''), 0, $2::int * count(*) FROM m_visits
    WHERE exit_type = 'lost' AND pos IS NOT NULL GROUP BY stage, lost_reason
    UNION ALL
    SELECT %(FIRST)s, stage, '', us, $2::int * count(*) FROM m_visits
    WHERE visit_no = 1 AND us IS NOT NULL AND pos IS NOT NULL GROUP BY stage, us
    UNION ALL
    -- cumulative: a deal's last visit so far carries the time of the earlier ones
    SELECT %(CUMULATIVE)s, stage, '', cum_us, $2::int * count(*) FROM m_visits
    WHERE last_visit AND us IS NOT NULL AND pos IS NOT NULL GROUP BY stage, cum_us
    UNION ALL
    SELECT %(SKIPPED)s, s.stage, '', 0, $2::int * count(DISTINCT v.deal_id)
    FROM m_visits v, unnest(v.skipped) AS s(stage) WHERE s.stage IN (SELECT stage FROM m_stages) GROUP BY s.stage
    UNION ALL
    SELECT CASE type WHEN 'SlaBreached' THEN %(SLA_BREACHED)s WHEN 'ReminderSent' THEN %(REMINDERS)s
                ELSE %(ESCALATIONS)s END, stage, '', 0, $2::int * count(*)
    FROM m_notices WHERE type IN ('SlaBreached', 'ReminderSent', 'Escalated') AND stage IN (SELECT stage FROM m_stages)
    GROUP BY type, stage""",
    """INSERT INTO m_parts
    WITH per_deal_phase AS MATERIALIZED (
        SELECT deal_id, phase, bool_or(reach_after > phase_last_pos) AS converted,
               sum(us) AS us, bool_and(us IS NOT NULL) AS closed
        FROM m_visits WHERE phase IS NOT NULL GROUP BY deal_id, phase
    )
    SELECT %(PHASE_ENTERED)s, phase, '', 0, $2::int * count(*) FROM per_deal_phase GROUP BY phase
    UNION ALL SELECT %(PHASE_CONVERTED)s, phase, '', 0, $2::int * count(*) FROM per_deal_phase WHERE converted
        GROUP BY phase
    UNION ALL SELECT %(PHASE_TIME)s, phase, '', us, $2::int * count(*) FROM per_deal_phase WHERE closed
        GROUP BY phase, us""",
    """CREATE TEMP TABLE m_outcome ON COMMIT DROP AS
    WITH ends AS (
        -- a deal is won or lost once (as seen at the instant looked from)
        SELECT deal_id, exit_type AS result, left_at AS closed_at FROM m_visits WHERE exit_type IN ('won', 'lost')
    ),
    current AS (SELECT deal_id, stage, pos FROM m_visits WHERE deal_last),
    follow_up AS (
        SELECT deal_id, count(*) FILTER (WHERE type = 'TouchSent') AS touches,
               bool_or(type = 'CadenceStarted') AS had_cadence
        FROM m_notices WHERE type IN ('TouchSent', 'CadenceStarted') GROUP BY deal_id
    )
    SELECT s.deal_id, s.started_at, s.value, e.result, e.closed_at, c.stage, c.pos,
           coalesce(f.touches, 0) AS touches, coalesce(f.had_cadence, false) AS had_cadence
    FROM m_scope s LEFT JOIN ends e USING (deal_id) LEFT JOIN current c USING (deal_id)
         LEFT JOIN follow_up f USING (deal_id)""",
    """INSERT INTO m_parts
    SELECT %(DEALS)s, '', '', 0, $2::int * count(*) FROM m_outcome HAVING count(*) > 0
    UNION ALL SELECT %(WON)s, '', '', 0, $2::int * count(*) FROM m_outcome WHERE result = 'won' HAVING count(*) > 0
    UNION ALL SELECT %(LOST_DEALS)s, '', '', 0, $2::int * count(*) FROM m_outcome WHERE result = 'lost'
        HAVING count(*) > 0
    UNION ALL SELECT %(WON_TOUCHES)s, '', '', 0, $2::int * sum(touches) FROM m_outcome WHERE result = 'won'
        HAVING sum(touches) > 0
    UNION ALL SELECT %(WITH_CADENCE)s, '', '', 0, $2::int * count(*) FROM m_outcome WHERE had_cadence
        HAVING count(*) > 0
    UNION ALL SELECT %(FIVE_PLUS)s, '', '', 0, $2::int * count(*) FROM m_outcome WHERE had_cadence AND touches >= 5
        HAVING count(*) > 0
    UNION ALL SELECT %(CYCLE)s, '', '', (extract(epoch FROM closed_at - started_at) * 1000000)::bigint,
        $2::int * count(*) FROM m_outcome WHERE result IS NOT NULL GROUP BY 4""",
    # per stage: how many open deals, and their value added up
    """INSERT INTO m_parts (kind, stage, detail, x, n, s)
    SELECT %(PIPELINE)s, stage, '', 0, $2::int * count(*), $2::int * sum(coalesce(value, 0)) FROM m_outcome
    WHERE result IS NULL AND pos IS NOT NULL GROUP BY stage""",
    "DROP TABLE m_scope, m_visits, m_notices, m_outcome",
]
_CODES = {k.name: int(k) for k in Kind} | {"COARSE": COARSE}


def _coded(sql: str) -> str:
    """The SQL with %(NAME)s standing for a kind's code (or COARSE)."""
    return sql % _CODES


_RAW = [_coded(sql) for sql in _RAW]

# Every figure from the totals of the groups $1. A histogram's median and p90 without reading
# all its values: its coarse rows (of the groups, or of their rollup, $2; store.aggregates.bin_of)
# locate the bin that holds each rank the interpolation needs (floor and ceiling of q * (n - 1)),
# and only the values in that bin are read, among the groups' rows, through the primary key.
_FROM_TOTALS = _coded("""
WITH ranked_bins AS MATERIALIZED (
    SELECT kind, stage, bin, n, sum(n) OVER (PARTITION BY kind, stage ORDER BY bin) AS upto,
           sum(n) OVER (PARTITION BY kind, stage) AS total, sum(s) OVER (PARTITION BY kind, stage) AS s
    FROM (
        SELECT kind - %(COARSE)s AS kind, stage, x AS bin, sum(n)::float8 AS n, sum(s) AS s FROM metric_totals
        WHERE gid = ANY($2::int[]) AND kind > %(COARSE)s GROUP BY kind, stage, x HAVING sum(n) <> 0
    ) coarse
),
wanted AS (
    SELECT DISTINCT kind, stage, r FROM ranked_bins, LATERAL (VALUES
        (floor(0.5 * (total - 1))), (ceil(0.5 * (total - 1))), (floor(0.9 * (total - 1))), (ceil(0.9 * (total - 1)))
    ) AS q(r)
),
located AS MATERIALIZED (
    SELECT w.kind, w.stage, w.r, k.bin, w.r - (k.upto - k.n) AS r_in_bin,
           floor(k.bin / 32) AS e, k.bin - 32 * floor(k.bin / 32) AS m  -- the bin is [m * 2**e, (m + 1) * 2**e)
    FROM wanted w JOIN ranked_bins k ON k.kind = w.kind AND k.stage = w.stage AND w.r >= k.upto - k.n AND w.r < k.upto
)
SELECT l.kind, l.stage, '' AS detail, l.r, v.x, NULL::float8 AS n, NULL::float8 AS s
FROM located l CROSS JOIN LATERAL (
    SELECT x FROM (
        SELECT x, sum(sum(n)) OVER (ORDER BY x) AS upto FROM metric_totals
        WHERE gid = ANY($1::int[]) AND kind = l.kind AND stage = l.stage AND detail = ''
          AND x >= CASE WHEN l.bin < 0 THEN '-infinity' ELSE l.m * power(2, l.e) END
          AND x < CASE WHEN l.bin < 0 THEN 0 ELSE (l.m + 1) * power(2, l.e) END
        GROUP BY x HAVING sum(n) <> 0
    ) bin WHERE upto > l.r_in_bin ORDER BY x LIMIT 1
) v
UNION ALL
SELECT DISTINCT kind, stage, '', NULL::float8, NULL::float8, total, s FROM ranked_bins
UNION ALL
SELECT kind, stage, detail, NULL, NULL, sum(n), sum(s) FROM metric_totals
WHERE gid = ANY($1::int[]) AND kind < %(FIRST)s GROUP BY kind, stage, detail HAVING sum(n) <> 0 OR sum(s) <> 0
""")

# Every figure from rows of the aggregates (/*rows*/) and those computed into m_parts
# (/*computed*/): each key's rows added up, and a histogram's values ranked.
_FROM_ROWS = _coded("""
WITH parts AS (
    /*rows*/
    /*computed*/
),
summed AS MATERIALIZED (
    SELECT kind, stage, detail, x, sum(n)::float8 AS n, sum(s) AS s FROM parts
    GROUP BY kind, stage, detail, x HAVING sum(n) <> 0 OR sum(s) <> 0
),
ranked AS (
    SELECT kind, stage, x, n, sum(n) OVER (PARTITION BY kind, stage ORDER BY x) AS upto,
           sum(n) OVER (PARTITION BY kind, stage) AS total
    FROM summed WHERE kind >= %(FIRST)s
),
spread AS MATERIALIZED (
    -- the values at the ranks percentile_cont interpolates between, for the median and p90
    SELECT kind, stage, max(total) AS total, sum(x * n) AS s,
           floor(0.5 * (max(total) - 1)) AS r1, min(x) FILTER (WHERE upto > floor(0.5 * (total - 1))) AS x1,
           ceil(0.5 * (max(total) - 1)) AS r2, min(x) FILTER (WHERE upto > ceil(0.5 * (total - 1))) AS x2,
           floor(0.9 * (max(total) - 1)) AS r3, min(x) FILTER (WHERE upto > floor(0.9 * (total - 1))) AS x3,
           ceil(0.9 * (max(total) - 1)) AS r4, min(x) FILTER (WHERE upto > ceil(0.9 * (total - 1))) AS x4
    FROM ranked GROUP BY kind, stage
)
SELECT kind, stage, '' AS detail, v.r, v.x, NULL::float8 AS n, NULL::float8 AS s
FROM spread, LATERAL (VALUES (r1, x1), (r2, x2), (r3, x3), (r4, x4)) AS v(r, x)
UNION ALL
SELECT kind, stage, '', NULL::float8, NULL::float8, total, s FROM spread
UNION ALL
SELECT kind, stage, detail, NULL, NULL, sum(n), sum(s) FROM summed
WHERE kind < %(FIRST)s GROUP BY kind, stage, detail
""")
_TOTALS = _coded(
    "SELECT kind, stage, detail, x, n, s FROM metric_totals WHERE gid = ANY($1::int[]) AND kind < %(COARSE)s"
)
_BUCKETS = (
    "SELECT kind, stage, detail, x, n, s FROM metric_buckets WHERE gid = ANY($1::int[])"
    " AND sb >= $2 AND sb < $3 AND eb < $4"
)
_NEVER = 2**31 - 1  # a day after every day


def _share(n: int, d: int) -> float | None:
    return n / d if d else None


def _day_on_or_after(t: datetime) -> int:
    return day(t) if t == day_start(day(t)) else day(t) + 1


async def compute(pool: asyncpg.Pool, d: ProcessDefinition, filters: Filters) -> Metrics:
    f = filters
    layout = Layout.of(d)
    # the start days wholly inside the window, and the day of the instant looked from
    first_day = -_NEVER if f.since is None else _day_on_or_after(f.since)
    end_day = _NEVER if f.until is None else day(f.until)
    edge_day = None if f.as_of is None else day(f.as_of)
    timeless = f.since is None and f.until is None and f.as_of is None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        # an analytical query: let its sorts and hashes stay in memory (this transaction only)
        await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        groups = await conn.fetch(_GROUPS, f.process, f.version, f.owner, f.experiment, layout.text)
        aggregated = [r["gid"] for r in groups if r["aggregated"]]
        others = [r["gid"] for r in groups if not r["aggregated"]]
        binned = aggregated
        if f.version is None and f.owner is None and f.experiment is None:
            # every deal of the process with this layout: their rollup holds the coarse bins of all
            binned = [r["gid"] for r in await conn.fetch(_ROLLUP, f.process, layout.text)]
        computed = False
        if others or not timeless:
            computed = await _computed(conn, d, layout, f, others, aggregated, first_day, end_day, edge_day)
        if timeless and not computed:
            rows = await conn.fetch(_FROM_TOTALS, aggregated, binned)
        else:
            sql = _FROM_ROWS.replace("/*rows*/", _TOTALS if timeless else _BUCKETS)
            if computed:
                sql = sql.replace("/*computed*/", "UNION ALL SELECT kind, stage, detail, x, n, s FROM m_parts")
            if timeless:
                rows = await conn.fetch(sql, aggregated)
            else:
                rows = await conn.fetch(sql, aggregated, first_day, end_day, _NEVER if edge_day is None else edge_day)
    return _metrics(d, filters, rows)


async def _computed(
    conn: Conn,
    d: ProcessDefinition,
    layout: Layout,
    f: Filters,
    others: list[int],
    aggregated: list[int],
    first_day: int,
    end_day: int,
    edge_day: int | None,
) -> bool:
    """Compute the figures the aggregates cannot give into m_parts; return whether there were any."""
    far_past, far_future = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    as_of = f.as_of or far_future
    await conn.execute(_STAGES, [s for s, _ in layout.stages], [p for _, p in layout.stages])
    await conn.execute(
        'CREATE TEMP TABLE m_parts (kind smallint, stage text COLLATE "C", detail text COLLATE "C",'
        " x float8, n bigint, s float8 NOT NULL DEFAULT 0) ON COMMIT DROP"
    )
    await conn.execute(
        _SUBSET,
        others,
        [] if f.since is None and f.until is None and f.as_of is None else aggregated,
        f.since or far_past,
        f.until or far_future,
        as_of,
        far_past if f.since is None else day_start(first_day),
        far_future if f.until is None else day_start(end_day),
        None if edge_day is None else day_start(edge_day),
        f.process,
    )
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM m_subset)"):
        return False
    await conn.execute("ANALYZE m_subset")  # a temporary table has no statistics until asked
    await _raw(conn, as_of, 1, f.process, edge_only=False)
    if edge_day is not None:
        await _raw(conn, day_start(edge_day) - US, -1, f.process, edge_only=True)
    return True


async def _raw(conn: Conn, at: datetime, sign: int, process: str, *, edge_only: bool) -> None:
    """Add the figures of the deals in m_subset (`edge_only`: of those marked edge) as of `at`."""
    for sql in _RAW:
        sql = sql.replace("/*edge*/", "AND edge" if edge_only else "")
        # each statement is sent the parameters it names, renumbered
        used = [(n, p) for n, p in ((1, at), (2, sign), (3, process)) if f"${n}" in sql]
        for i, (n, _) in enumerate(used):
            sql = sql.replace(f"${n}", f"${i + 1}")
        await conn.execute(sql, *(p for _, p in used))


def _interpolated(q: float, total: int, at: dict[int, float]) -> float:
    """percentile_cont(q) over `total` values, from the values at the ranks it needs (in seconds)."""
    pos = q * (total - 1)
    lo, hi = at[math.floor(pos)], at[math.ceil(pos)]
    return (lo + (hi - lo) * (pos - math.floor(pos))) / 1e6


def _metrics(d: ProcessDefinition, filters: Filters, rows: list[asyncpg.Record]) -> Metrics:
    """The figures from rows of _FROM_TOTALS or _FROM_ROWS: counts and sums; histograms' sizes and
    sums; the values at the ranks the percentiles need."""
    counts: dict[tuple[int, str, str], int] = {}
    sums: dict[tuple[int, str], float] = {}
    ranks: dict[tuple[int, str], dict[int, float]] = {}
    for r in rows:
        key = (r["kind"], r["stage"])
        if r["r"] is not None:
            ranks.setdefault(key, {})[int(r["r"])] = r["x"]
        else:
            counts[(*key, r["detail"])] = round(r["n"])
            sums[key] = sums.get(key, 0.0) + float(r["s"])
    spread = {
        key: Durations(
            n=counts[(*key, "")],
            median=_interpolated(0.5, counts[(*key, "")], at),
            p90=_interpolated(0.9, counts[(*key, "")], at),
            mean=sums[key] / counts[(*key, "")] / 1e6,
        )
        for key, at in ranks.items()
    }

    def n(kind: Kind, stage: str = "") -> int:
        return counts.get((kind, stage, ""), 0)

    def durations(kind: Kind, stage: str = "") -> Durations:
        return spread.get((kind, stage), Durations(n=0, median=None, p90=None, mean=None))

    stages = []
    for s in d.stages:
        entered = n(Kind.ENTERED, s.id)
        strict = n(Kind.STRICT_NEXT, s.id) if d.next_stage(s.id) else n(Kind.STRICT_WON, s.id)
        later = n(Kind.LATER, s.id)
        stages.append(
            StageMetrics(
                stage=s.id,
                phase=s.phase,
                entered=entered,
                completed=n(Kind.COMPLETED, s.id),
                skipped=n(Kind.SKIPPED, s.id),
                moved_back=n(Kind.MOVED_BACK, s.id),
                lost=n(Kind.LOST, s.id),
                lost_reasons={
                    detail: v for (k, stage, detail), v in counts.items() if k == Kind.REASON and stage == s.id and v
                },
                converted_strict=strict,
                converted_any_later=later,
                conversion_strict=_share(strict, entered),
                conversion_any_later=_share(later, entered),
                first_entry=durations(Kind.FIRST, s.id),
                cumulative=durations(Kind.CUMULATIVE, s.id),
                sla_breaches=n(Kind.SLA_BREACHED, s.id),
                reminders=n(Kind.REMINDERS, s.id),
                escalations=n(Kind.ESCALATIONS, s.id),
            )
        )
    phases = [
        PhaseMetrics(
            phase=p,
            entered=n(Kind.PHASE_ENTERED, p),
            lost=sum(n(Kind.LOST, s.id) for s in d.stages if s.phase == p),  # a deal is lost once
            converted=n(Kind.PHASE_CONVERTED, p),
            conversion=_share(n(Kind.PHASE_CONVERTED, p), n(Kind.PHASE_ENTERED, p)),
            time_in_phase=durations(Kind.PHASE_TIME, p),
        )
        for p in dict.fromkeys(s.phase for s in d.stages)
        if n(Kind.PHASE_ENTERED, p)  # a phase no deal entered is left out
    ]
    won, lost = n(Kind.WON), n(Kind.LOST_DEALS)
    deals = DealSetMetrics(
        deals=n(Kind.DEALS),
        won=won,
        lost=lost,
        open=n(Kind.DEALS) - won - lost,
        win_rate=_share(won, won + lost),
        cycle_time=durations(Kind.CYCLE),
        weighted_pipeline=sum(s.probability * sums.get((Kind.PIPELINE, s.id), 0.0) for s in d.stages),
        touches_per_won_deal=n(Kind.WON_TOUCHES) / won if won else None,
        deals_with_cadence=n(Kind.WITH_CADENCE),
        share_five_or_more_touches=_share(n(Kind.FIVE_PLUS), n(Kind.WITH_CADENCE)),
    )
    return Metrics(filters=filters, stages=stages, phases=phases, deals=deals)
