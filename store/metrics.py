"""Sales metrics computed in SQL, for one process (and optionally a version, an owner, a start
window and an instant to look back from).

They read the projections kept with the event log (`deals` and `stage_visits`, see
`store.visits`) and, through a partial index, the few event types counted one by one, so a full
computation aggregates narrow rows instead of re-deriving visits from every event each time.

Definitions (the README repeats them; `tests/test_metrics.py` checks each against a plain
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

import json
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from definitions.model import ProcessDefinition


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


_BASE: list[tuple[str, list[int]]] = [
    # computed once per call, inside the call's snapshot; the three queries below read them
    (
        # $6 is the instant to look from: everything after it is treated as not yet happened
        """CREATE TEMP TABLE m_scope ON COMMIT DROP AS
        SELECT deal_id, started_at, value FROM deals
        WHERE process = $1
          AND ($2::text IS NULL OR start_version = $2 OR version = $2)
          AND ($3::text IS NULL OR start_owner = $3)
          AND ($4::timestamptz IS NULL OR started_at >= $4)
          AND ($5::timestamptz IS NULL OR started_at < $5)
          AND started_at <= coalesce($6::timestamptz, 'infinity')
          AND ($7::text IS NULL OR experiment = $7)""",
        [*range(6), 10],
    ),
    (
        """CREATE TEMP TABLE m_stages ON COMMIT DROP AS
        SELECT s.stage, s.pos, n.next_stage, p.phase, q.probability,
               max(s.pos) OVER (PARTITION BY p.phase) AS phase_last_pos
        FROM unnest($1::text[]) WITH ORDINALITY AS s(stage, pos)
        JOIN unnest($2::text[]) WITH ORDINALITY AS n(next_stage, pos) USING (pos)
        JOIN unnest($3::text[]) WITH ORDINALITY AS p(phase, pos) USING (pos)
        JOIN unnest($4::float8[]) WITH ORDINALITY AS q(probability, pos) USING (pos)""",
        list(range(6, 10)),
    ),
    (
        # the visits as they stood at $2: an exit after it has not happened yet
        """CREATE TEMP TABLE m_visits ON COMMIT DROP AS
        SELECT deal_id, stage, pos, next_stage, seq, visit_no, entered_at, left_at, exit_type, lost_reason, skipped,
               completed, first_back, first_next, last_visit, phase, phase_last_pos,
               row_number() OVER since_entry = 1 AS deal_last,
               extract(epoch FROM left_at - entered_at) AS seconds,
               cum_before + extract(epoch FROM left_at - entered_at) AS cum_seconds,
               -- the furthest the deal gets after entering: a later visit's position, or "won"
               greatest(max(pos) OVER later, CASE WHEN bool_or(exit_type = 'won') OVER since_entry THEN 1000000 END)
                   AS reach_after
        FROM (
            SELECT v.deal_id, v.stage, st.pos, st.next_stage, st.phase, st.phase_last_pos, v.seq, v.visit_no,
                   v.entered_at,
                   CASE WHEN v.exit_at <= a.t THEN v.exit_at END AS left_at,
                   CASE WHEN v.exit_at <= a.t THEN v.exit_type END AS exit_type,
                   CASE WHEN v.exit_at <= a.t THEN v.lost_reason END AS lost_reason,
                   CASE WHEN v.exit_at <= a.t THEN v.skipped END AS skipped,
                   v.first_completion AND v.completed_at <= a.t AS completed,
                   v.first_back AND v.exit_at <= a.t AS first_back,
                   v.first_next AND v.exit_at <= a.t AS first_next,
                   v.cum_before, v.next_entry_at IS NULL OR v.next_entry_at > a.t AS last_visit
            FROM stage_visits v LEFT JOIN m_stages st ON st.stage = v.stage,
                 (SELECT coalesce($2::timestamptz, 'infinity') AS t) a
            WHERE v.process = $1 AND v.entered_at <= a.t /*scope*/
        ) seen
        -- newest first, so each frame only grows: every aggregate is computed incrementally
        WINDOW later AS (PARTITION BY deal_id ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
               since_entry AS (PARTITION BY deal_id ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)""",
        [0, 5],
    ),
    (
        # the few events counted one by one, read through a partial index
        """CREATE TEMP TABLE m_notices ON COMMIT DROP AS
        SELECT e.deal_id, e.type, e.stage FROM deal_events e
        WHERE e.process = $1 AND e.occurred_at <= coalesce($2::timestamptz, 'infinity') /*scope*/
          AND e.type IN ('TouchSent', 'CadenceStarted', 'SlaBreached', 'ReminderSent', 'Escalated')""",
        [0, 5],
    ),
]

_STAGES = """
WITH per_stage AS MATERIALIZED (
    -- one pass, no grouping by deal: the first-occurrence flags make each count a count of deals
    SELECT stage, count(*) FILTER (WHERE visit_no = 1) AS entered,
           count(*) FILTER (WHERE completed) AS completed,
           count(*) FILTER (WHERE first_back) AS moved_back,
           count(*) FILTER (WHERE exit_type = 'lost') AS lost,
           count(*) FILTER (WHERE (first_next AND next_stage <> '') OR (exit_type = 'won' AND next_stage = ''))
               AS converted_strict,
           -- a deal's first visit reaches at least as far as any later one
           count(*) FILTER (WHERE visit_no = 1 AND reach_after > pos) AS converted_any_later,
           count(*) FILTER (WHERE visit_no = 1 AND left_at IS NOT NULL) AS first_n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE visit_no = 1) AS first_median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE visit_no = 1) AS first_p90,
           avg(seconds) FILTER (WHERE visit_no = 1) AS first_mean,
           -- cumulative: a deal's last visit so far carries the time of the earlier ones
           count(*) FILTER (WHERE last_visit AND left_at IS NOT NULL) AS cum_n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cum_seconds) FILTER (WHERE last_visit) AS cum_median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY cum_seconds) FILTER (WHERE last_visit) AS cum_p90,
           avg(cum_seconds) FILTER (WHERE last_visit) AS cum_mean
    FROM m_visits GROUP BY stage
),
counted AS MATERIALIZED (
    SELECT stage, type, count(*) AS n FROM m_notices
    WHERE type IN ('SlaBreached', 'ReminderSent', 'Escalated') GROUP BY stage, type
),
skips AS MATERIALIZED (
    SELECT s.skipped AS stage, count(DISTINCT v.deal_id) AS n
    FROM m_visits v, unnest(v.skipped) AS s(skipped) WHERE v.skipped IS NOT NULL GROUP BY s.skipped
),
reasons AS MATERIALIZED (
    SELECT stage, jsonb_object_agg(lost_reason, n) AS by_reason FROM (
        SELECT stage, lost_reason, count(*) AS n FROM m_visits WHERE exit_type = 'lost'
        GROUP BY stage, lost_reason) r
    GROUP BY stage
)
SELECT st.stage, st.phase, st.pos,
    coalesce(ps.entered, 0) AS entered, coalesce(ps.completed, 0) AS completed,
    coalesce(ps.moved_back, 0) AS moved_back, coalesce(ps.lost, 0) AS lost,
    coalesce((SELECT n FROM skips k WHERE k.stage = st.stage), 0) AS skipped,
    coalesce((SELECT by_reason FROM reasons r WHERE r.stage = st.stage), '{}'::jsonb) AS lost_reasons,
    coalesce(ps.converted_strict, 0) AS converted_strict,
    coalesce(ps.converted_any_later, 0) AS converted_any_later,
    coalesce((SELECT n FROM counted x WHERE x.stage = st.stage AND x.type = 'SlaBreached'), 0) AS sla_breaches,
    coalesce((SELECT n FROM counted x WHERE x.stage = st.stage AND x.type = 'ReminderSent'), 0) AS reminders,
    coalesce((SELECT n FROM counted x WHERE x.stage = st.stage AND x.type = 'Escalated'), 0) AS escalations,
    coalesce(ps.first_n, 0) AS first_n, ps.first_median, ps.first_p90, ps.first_mean,
    coalesce(ps.cum_n, 0) AS cum_n, ps.cum_median, ps.cum_p90, ps.cum_mean
FROM m_stages st LEFT JOIN per_stage ps ON ps.stage = st.stage
ORDER BY st.pos
"""

_PHASES = """
WITH phase_order AS MATERIALIZED (
    SELECT phase, min(pos) AS first_pos, max(pos) AS last_pos FROM m_stages GROUP BY phase
),
per_deal_phase AS MATERIALIZED (
    SELECT deal_id, phase, bool_or(exit_type = 'lost') AS lost, bool_or(reach_after > phase_last_pos) AS converted,
           sum(seconds) AS seconds, bool_and(left_at IS NOT NULL) AS closed
    FROM m_visits WHERE phase IS NOT NULL GROUP BY deal_id, phase
),
per_phase AS MATERIALIZED (
    SELECT phase, count(*) AS entered, count(*) FILTER (WHERE lost) AS lost,
           count(*) FILTER (WHERE converted) AS converted,
           count(*) FILTER (WHERE closed) AS t_n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE closed) AS t_median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE closed) AS t_p90,
           avg(seconds) FILTER (WHERE closed) AS t_mean
    FROM per_deal_phase GROUP BY phase
)
SELECT po.phase, po.first_pos, pp.entered, pp.lost, pp.converted, pp.t_n, pp.t_median, pp.t_p90, pp.t_mean
FROM phase_order po JOIN per_phase pp USING (phase) ORDER BY po.first_pos
"""

_DEALS = """
WITH ends AS MATERIALIZED (
    -- a deal is won or lost once (as seen at the instant looked from)
    SELECT deal_id, exit_type AS result, left_at AS closed_at FROM m_visits WHERE exit_type IN ('won', 'lost')
),
current AS MATERIALIZED (SELECT deal_id, stage FROM m_visits WHERE deal_last),
follow_up AS MATERIALIZED (
    SELECT deal_id, count(*) FILTER (WHERE type = 'TouchSent') AS touches,
           bool_or(type = 'CadenceStarted') AS had_cadence
    FROM m_notices WHERE type IN ('TouchSent', 'CadenceStarted') GROUP BY deal_id
),
outcome AS (
    SELECT s.deal_id, s.started_at, s.value, e.result, e.closed_at, c.stage,
           coalesce(f.touches, 0) AS touches, coalesce(f.had_cadence, false) AS had_cadence
    FROM m_scope s LEFT JOIN ends e USING (deal_id) LEFT JOIN current c USING (deal_id)
         LEFT JOIN follow_up f USING (deal_id)
)
SELECT
    count(*) AS deals,
    count(*) FILTER (WHERE result = 'won') AS won,
    count(*) FILTER (WHERE result = 'lost') AS lost,
    count(*) FILTER (WHERE result IS NULL) AS open,
    count(*) FILTER (WHERE result IS NOT NULL) AS closed_n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at))
        FILTER (WHERE result IS NOT NULL) AS cycle_median,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at))
        FILTER (WHERE result IS NOT NULL) AS cycle_p90,
    avg(extract(epoch FROM closed_at - started_at)) FILTER (WHERE result IS NOT NULL) AS cycle_mean,
    coalesce(sum(coalesce(o.value, 0) * st.probability) FILTER (WHERE result IS NULL), 0) AS weighted_pipeline,
    avg(touches) FILTER (WHERE result = 'won') AS touches_per_won,
    count(*) FILTER (WHERE had_cadence) AS with_cadence,
    count(*) FILTER (WHERE had_cadence AND touches >= 5) AS five_plus
FROM outcome o LEFT JOIN m_stages st ON st.stage = o.stage
"""


WORK_MEM = "256MB"


def _narrowed(f: Filters) -> bool:
    """Whether the deal set is smaller than "every deal of the process that had started"."""
    return any(x is not None for x in (f.version, f.owner, f.since, f.until, f.experiment))


def _share(n: int, d: int) -> float | None:
    return n / d if d else None


def _durations(row: Any, prefix: str) -> Durations:
    return Durations(
        n=row[f"{prefix}_n"],
        median=row[f"{prefix}_median"],
        p90=row[f"{prefix}_p90"],
        mean=None if row[f"{prefix}_mean"] is None else float(row[f"{prefix}_mean"]),
    )


def _args(d: ProcessDefinition, f: Filters) -> list[Any]:
    stages = d.stages
    nexts = [d.next_stage(s.id) or "" for s in stages]
    return [
        d.name,
        f.version,
        f.owner,
        f.since,
        f.until,
        f.as_of,
        [s.id for s in stages],
        nexts,
        [s.phase for s in stages],
        [s.probability for s in stages],
        f.experiment,
    ]


async def compute(pool: asyncpg.Pool, d: ProcessDefinition, filters: Filters) -> Metrics:
    args = _args(d, filters)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        # an analytical query: let its sorts and hashes stay in memory (this transaction only)
        await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        for sql, params in _BASE:  # one snapshot for everything below
            if _narrowed(filters):
                sql = sql.replace("/*scope*/", "AND deal_id IN (SELECT deal_id FROM m_scope)")
            await conn.execute(sql, *[args[i] for i in params])
        stage_rows = await conn.fetch(_STAGES)
        phase_rows = await conn.fetch(_PHASES)
        deal_row = await conn.fetchrow(_DEALS)
    assert deal_row is not None
    stages = [
        StageMetrics(
            stage=r["stage"],
            phase=r["phase"],
            entered=r["entered"],
            completed=r["completed"],
            skipped=r["skipped"],
            moved_back=r["moved_back"],
            lost=r["lost"],
            lost_reasons=_json(r["lost_reasons"]),
            converted_strict=r["converted_strict"],
            converted_any_later=r["converted_any_later"],
            conversion_strict=_share(r["converted_strict"], r["entered"]),
            conversion_any_later=_share(r["converted_any_later"], r["entered"]),
            first_entry=_durations(r, "first"),
            cumulative=_durations(r, "cum"),
            sla_breaches=r["sla_breaches"],
            reminders=r["reminders"],
            escalations=r["escalations"],
        )
        for r in stage_rows
    ]
    phases = [
        PhaseMetrics(
            phase=r["phase"],
            entered=r["entered"],
            lost=r["lost"],
            converted=r["converted"],
            conversion=_share(r["converted"], r["entered"]),
            time_in_phase=_durations(r, "t"),
        )
        for r in phase_rows
    ]
    dr = deal_row
    deals = DealSetMetrics(
        deals=dr["deals"],
        won=dr["won"],
        lost=dr["lost"],
        open=dr["open"],
        win_rate=_share(dr["won"], dr["won"] + dr["lost"]),
        cycle_time=Durations(
            n=dr["closed_n"],
            median=dr["cycle_median"],
            p90=dr["cycle_p90"],
            mean=None if dr["cycle_mean"] is None else float(dr["cycle_mean"]),
        ),
        weighted_pipeline=float(dr["weighted_pipeline"]),
        touches_per_won_deal=None if dr["touches_per_won"] is None else float(dr["touches_per_won"]),
        deals_with_cadence=dr["with_cadence"],
        share_five_or_more_touches=_share(dr["five_plus"], dr["with_cadence"]),
    )
    return Metrics(filters=filters, stages=stages, phases=phases, deals=deals)


def _json(value: Any) -> dict[str, int]:
    data = json.loads(value) if isinstance(value, str) else value
    return {str(k): int(v) for k, v in (data or {}).items()}
