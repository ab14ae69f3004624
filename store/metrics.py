"""Sales metrics computed in SQL from the event log, for one process (and optionally a version,
an owner, a start window and an instant to look back from).

Definitions (the README repeats them; `tests/test_metrics.py` checks each against a plain
Python computation over the same events):

- The deal set: deals of the process whose DealStarted falls in [since, until), optionally of
  one version and one starting owner, counting only events at or before `as_of`.
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


class Metrics(BaseModel):
    filters: Filters
    stages: list[StageMetrics]
    phases: list[PhaseMetrics]
    deals: DealSetMetrics


_BASE = [
    # computed once per call, inside the call's snapshot; the three queries below read them
    (
        """CREATE TEMP TABLE m_scope ON COMMIT DROP AS
        SELECT deal_id, occurred_at AS started_at, (payload->>'value')::float8 AS value
        FROM deal_events
        WHERE type = 'DealStarted' AND process = $1
          AND ($2::text IS NULL OR version = $2)
          AND ($3::text IS NULL OR payload->>'owner' = $3)
          AND ($4::timestamptz IS NULL OR occurred_at >= $4)
          AND ($5::timestamptz IS NULL OR occurred_at < $5)
          AND occurred_at <= coalesce($6::timestamptz, 'infinity')""",
        slice(0, 6),
    ),
    (
        # only the events and the payload fields the metrics read: a narrow table is a fast one
        """CREATE TEMP TABLE m_ev ON COMMIT DROP AS
        SELECT e.deal_id, e.seq, e.type, e.stage, e.occurred_at,
               e.payload->>'via' AS via, e.payload->>'reason' AS reason,
               CASE WHEN e.type = 'StageSkipped' THEN e.payload->'skipped' END AS skipped
        FROM deal_events e JOIN m_scope s USING (deal_id)
        WHERE e.occurred_at <= coalesce($1::timestamptz, 'infinity')
          AND e.type IN ('StageEntered', 'StageCompleted', 'StageSkipped', 'MovedBack', 'DealWon', 'DealLost',
                         'DealClosed', 'SlaBreached', 'ReminderSent', 'Escalated', 'TouchSent', 'CadenceStarted')""",
        slice(5, 6),
    ),
    (
        """CREATE TEMP TABLE m_stages ON COMMIT DROP AS
        SELECT s.stage, s.pos, n.next_stage, p.phase, q.probability
        FROM unnest($1::text[]) WITH ORDINALITY AS s(stage, pos)
        JOIN unnest($2::text[]) WITH ORDINALITY AS n(next_stage, pos) USING (pos)
        JOIN unnest($3::text[]) WITH ORDINALITY AS p(phase, pos) USING (pos)
        JOIN unnest($4::float8[]) WITH ORDINALITY AS q(probability, pos) USING (pos)""",
        slice(6, 10),
    ),
    (
        """CREATE TEMP TABLE m_visits ON COMMIT DROP AS
        SELECT deal_id, stage, seq, entered_at, left_at,
               extract(epoch FROM left_at - entered_at) AS seconds,
               row_number() OVER (PARTITION BY deal_id, stage ORDER BY seq) AS visit_no,
               reach_after
        FROM (
            SELECT e.deal_id, e.stage, e.seq, e.type, e.occurred_at AS entered_at,
                   lead(e.occurred_at) OVER (PARTITION BY e.deal_id ORDER BY e.seq) AS left_at,
                   -- the furthest the deal gets after this event: a later stage's position, or "won"
                   max(CASE WHEN e.type = 'DealWon' THEN 1000000 WHEN e.type = 'StageEntered' THEN st.pos END)
                       OVER (PARTITION BY e.deal_id ORDER BY e.seq DESC
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_after
            FROM m_ev e LEFT JOIN m_stages st ON st.stage = e.stage
            WHERE e.type IN ('StageEntered', 'DealWon', 'DealLost', 'DealClosed')
        ) marks
        WHERE type = 'StageEntered'""",
        None,
    ),
]

_SCOPE = """
WITH scope AS (SELECT * FROM m_scope),
ev AS (SELECT * FROM m_ev),
stages AS (SELECT * FROM m_stages),
visits AS (SELECT * FROM m_visits)
"""

_STAGES = (
    _SCOPE
    + """,
per_deal_stage AS MATERIALIZED (
    SELECT deal_id, stage, sum(seconds) AS seconds, bool_and(left_at IS NOT NULL) AS closed
    FROM visits GROUP BY deal_id, stage
),
counts AS MATERIALIZED (
    -- distinct first (hashed), then count: count(DISTINCT) would sort every row
    SELECT stage, type, count(*) AS n FROM (
        SELECT DISTINCT stage, type, deal_id FROM ev
        WHERE type IN ('StageEntered', 'StageCompleted', 'MovedBack', 'DealLost')) d
    GROUP BY stage, type
),
notices AS MATERIALIZED (
    SELECT stage, type, count(*) AS n FROM ev
    WHERE type IN ('SlaBreached', 'ReminderSent', 'Escalated') GROUP BY stage, type
),
skips AS MATERIALIZED (
    SELECT s.skipped AS stage, count(DISTINCT ev.deal_id) AS n
    FROM ev, jsonb_array_elements_text(ev.skipped) AS s(skipped)
    WHERE ev.type = 'StageSkipped' GROUP BY s.skipped
),
reasons AS MATERIALIZED (
    SELECT stage, jsonb_object_agg(reason, n) AS by_reason FROM (
        SELECT stage, reason, count(*) AS n FROM ev WHERE type = 'DealLost'
        GROUP BY stage, reason) r
    GROUP BY stage
),
strict AS MATERIALIZED (
    -- completed into the next stage (it is entered via "next"), or, for the last pre-sale stage, won there
    SELECT st.stage, count(DISTINCT e.deal_id) AS n
    FROM ev e JOIN stages st ON st.next_stage = e.stage
    WHERE e.type = 'StageEntered' AND e.via = 'next' AND st.next_stage <> ''
    GROUP BY st.stage
    UNION ALL
    SELECT st.stage, count(DISTINCT e.deal_id) AS n
    FROM ev e JOIN stages st ON st.stage = e.stage
    WHERE e.type = 'DealWon' AND st.next_stage = ''
    GROUP BY st.stage
),
firsts AS MATERIALIZED (
    SELECT stage, count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90, avg(seconds) AS mean
    FROM visits WHERE visit_no = 1 AND left_at IS NOT NULL GROUP BY stage
),
cums AS MATERIALIZED (
    SELECT stage, count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90, avg(seconds) AS mean
    FROM per_deal_stage WHERE closed GROUP BY stage
),
later AS MATERIALIZED (
    SELECT stage, count(*) AS n FROM (
        SELECT DISTINCT st.stage, v.deal_id
        FROM stages st JOIN visits v ON v.stage = st.stage
        WHERE v.reach_after > st.pos) d
    GROUP BY stage
)
SELECT st.stage, st.phase, st.pos,
    coalesce((SELECT n FROM counts c WHERE c.stage = st.stage AND c.type = 'StageEntered'), 0) AS entered,
    coalesce((SELECT n FROM counts c WHERE c.stage = st.stage AND c.type = 'StageCompleted'), 0) AS completed,
    coalesce((SELECT n FROM counts c WHERE c.stage = st.stage AND c.type = 'MovedBack'), 0) AS moved_back,
    coalesce((SELECT n FROM counts c WHERE c.stage = st.stage AND c.type = 'DealLost'), 0) AS lost,
    coalesce((SELECT n FROM skips k WHERE k.stage = st.stage), 0) AS skipped,
    coalesce((SELECT by_reason FROM reasons r WHERE r.stage = st.stage), '{}'::jsonb) AS lost_reasons,
    coalesce((SELECT n FROM strict x WHERE x.stage = st.stage), 0) AS converted_strict,
    coalesce((SELECT n FROM later x WHERE x.stage = st.stage), 0) AS converted_any_later,
    coalesce((SELECT n FROM notices x WHERE x.stage = st.stage AND x.type = 'SlaBreached'), 0) AS sla_breaches,
    coalesce((SELECT n FROM notices x WHERE x.stage = st.stage AND x.type = 'ReminderSent'), 0) AS reminders,
    coalesce((SELECT n FROM notices x WHERE x.stage = st.stage AND x.type = 'Escalated'), 0) AS escalations,
    coalesce(f.n, 0) AS first_n, f.median AS first_median, f.p90 AS first_p90, f.mean AS first_mean,
    coalesce(cu.n, 0) AS cum_n, cu.median AS cum_median, cu.p90 AS cum_p90, cu.mean AS cum_mean
FROM stages st LEFT JOIN firsts f ON f.stage = st.stage LEFT JOIN cums cu ON cu.stage = st.stage
ORDER BY st.pos
"""
)

_PHASES = (
    _SCOPE
    + """,
phase_order AS MATERIALIZED (SELECT phase, min(pos) AS first_pos, max(pos) AS last_pos FROM stages GROUP BY phase),
entries AS MATERIALIZED (
    SELECT v.deal_id, st.phase, v.seq FROM visits v JOIN stages st ON st.stage = v.stage
),
per_deal_phase AS MATERIALIZED (
    SELECT v.deal_id, st.phase, sum(v.seconds) AS seconds, bool_and(v.left_at IS NOT NULL) AS closed
    FROM visits v JOIN stages st ON st.stage = v.stage GROUP BY v.deal_id, st.phase
)
SELECT po.phase, po.first_pos,
    (SELECT count(DISTINCT deal_id) FROM entries en WHERE en.phase = po.phase) AS entered,
    (SELECT count(DISTINCT e.deal_id) FROM ev e JOIN stages st ON st.stage = e.stage
      WHERE e.type = 'DealLost' AND st.phase = po.phase) AS lost,
    (SELECT count(DISTINCT v.deal_id) FROM visits v JOIN stages st ON st.stage = v.stage
      WHERE st.phase = po.phase AND v.reach_after > po.last_pos) AS converted,
    (SELECT count(*) FROM per_deal_phase p WHERE p.phase = po.phase AND p.closed) AS t_n,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM per_deal_phase p
      WHERE p.phase = po.phase AND p.closed) AS t_median,
    (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) FROM per_deal_phase p
      WHERE p.phase = po.phase AND p.closed) AS t_p90,
    (SELECT avg(seconds) FROM per_deal_phase p WHERE p.phase = po.phase AND p.closed) AS t_mean
FROM phase_order po ORDER BY po.first_pos
"""
)

_DEALS = (
    _SCOPE
    + """,
per_deal AS MATERIALIZED (
    SELECT deal_id,
           (array_agg(type ORDER BY seq) FILTER (WHERE type IN ('DealWon', 'DealLost')))[1] AS result,
           (array_agg(occurred_at ORDER BY seq) FILTER (WHERE type IN ('DealWon', 'DealLost')))[1] AS closed_at,
           (array_agg(stage ORDER BY seq DESC) FILTER (WHERE type = 'StageEntered'))[1] AS stage,
           count(*) FILTER (WHERE type = 'TouchSent') AS touches,
           bool_or(type = 'CadenceStarted') AS had_cadence
    FROM ev GROUP BY deal_id
),
outcome AS (
    SELECT s.deal_id, s.started_at, s.value, p.result, p.closed_at, p.stage, p.touches, p.had_cadence
    FROM scope s JOIN per_deal p USING (deal_id)
)
SELECT
    count(*) AS deals,
    count(*) FILTER (WHERE result = 'DealWon') AS won,
    count(*) FILTER (WHERE result = 'DealLost') AS lost,
    count(*) FILTER (WHERE result IS NULL) AS open,
    count(*) FILTER (WHERE result IS NOT NULL) AS closed_n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at))
        FILTER (WHERE result IS NOT NULL) AS cycle_median,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at))
        FILTER (WHERE result IS NOT NULL) AS cycle_p90,
    avg(extract(epoch FROM closed_at - started_at)) FILTER (WHERE result IS NOT NULL) AS cycle_mean,
    coalesce(sum(coalesce(o.value, 0) * st.probability) FILTER (WHERE result IS NULL), 0) AS weighted_pipeline,
    avg(touches) FILTER (WHERE result = 'DealWon') AS touches_per_won,
    count(*) FILTER (WHERE had_cadence) AS with_cadence,
    count(*) FILTER (WHERE had_cadence AND touches >= 5) AS five_plus
FROM outcome o LEFT JOIN stages st ON st.stage = o.stage
"""
)


WORK_MEM = "256MB"


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
    ]


async def compute(pool: asyncpg.Pool, d: ProcessDefinition, filters: Filters) -> Metrics:
    args = _args(d, filters)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        # an analytical query: let its sorts and hashes stay in memory (this transaction only)
        await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        for sql, params in _BASE:  # one snapshot for everything below
            await conn.execute(sql, *(args[params] if params else []))
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
