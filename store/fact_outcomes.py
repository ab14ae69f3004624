"""Which value of a stage's fact wins: the approach used, the close technique, the competitor, a
budget set aside or not (seed 004's approaches and closes, seed 001's competitors), per value.

A stage's facts are recorded by the completion that leaves the stage: the same step enters the
next stage (or, from the last pre-sale stage, wins the deal); a deal lost at the stage may record
what was known there with its loss. So every deal with a value has
already "converted to the next stage" at the instant the value exists, and counting that would
show 100% for every value. What a value can tell apart is what happened *after* it was recorded.

Definitions (docs/metrics.md repeats them; tests/application/test_insights.py checks each against a plain
Python computation over the same events):

- A deal's value is the one its last StageCompleted of the stage recorded for the fact (a deal
  that came back and completed the stage again is counted under its newer answer), or the one
  its DealLost at that stage recorded (`deal lose --fact`: what was known when it was lost, such
  as the close that was tried), as of the instant looked from. Deals that never recorded one are
  not counted.
- *Conversion to the next stage*: the share of a value's deals that went on out of the stage the
  completion led into (N): after the value was recorded, entered a stage beyond N or were won.
  Its denominator is the settled deals: those that did, or that ended (won or lost). For the last
  pre-sale stage there is no N, since its completion is the win: the figure is not given.
- *Win rate*: won / (won + lost) of a value's deals; open deals are left out.
- Facts of a categorical type (`definitions.fact_types`: choice, boolean, currency) are counted
  value by value. Facts of a numeric type (number, integer) are split into buckets at the
  quantiles of the deals' values (`buckets` of them, quartiles by default; linear interpolation,
  as `percentile_cont`): a bucket holds the values above its lower edge and up to its upper one;
  equal edges merge buckets.
- Each value (bucket) is compared with the other values for each of the two outcomes
  (`analytics.verdicts`); an overall chi-square across all values is given beside.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from pydantic import BaseModel

from analytics.significance import chi_square, fisher_exact
from analytics.verdicts import ALPHA, MIN_DEALS, Compared, Group, p_text, split_off
from definitions.fact_types import Analysis
from definitions.model import FactSpec, ProcessDefinition
from store.insights import Scope, scoped, snapshot


class ValueOutcome(BaseModel):
    value: str | bool | None  # the recorded value; None for a bucket of numbers
    label: str
    low: float | None  # a bucket's edges: low < value <= high (None: unbounded)
    high: float | None
    deals: int
    open: int  # neither went on from the next stage nor ended
    won_share: float | None  # of all won deals with a value, this value's share
    conversion: Compared | None
    win_rate: Compared


class OverallTest(BaseModel):
    test: str  # "chi-square" or "fisher"
    statistic: float | None
    df: int | None
    p: float


class FactOutcomes(BaseModel):
    filters: Scope
    stage: str
    fact: str
    type: str
    next_stage: str | None
    buckets: int | None
    alpha: float
    min_deals: int
    values: list[ValueOutcome]
    conversion_overall: OverallTest | None
    win_rate_overall: OverallTest | None
    verdicts: list[str]
    notes: list[str]


_RECORDED = """
CREATE TEMP TABLE i_recorded ON COMMIT DROP AS
SELECT DISTINCT ON (deal_id) deal_id, seq, value FROM (
    -- through the partial index deal_events_completions: one stage's completions
    SELECT e.deal_id, e.seq, e.payload->'facts'->$3 AS value
    FROM deal_events e
    WHERE e.process = $1 AND e.type = 'StageCompleted' AND e.stage = $2
      AND e.occurred_at <= coalesce($4::timestamptz, 'infinity') AND e.payload->'facts' ? $3 /*scope*/
    UNION ALL
    -- deals lost at the stage, with what was known there when they were lost
    SELECT e.deal_id, e.seq, e.payload->'facts'->$3
    FROM deal_events e
    WHERE e.process = $1 AND e.type = 'DealLost' AND e.stage = $2
      AND e.occurred_at <= coalesce($4::timestamptz, 'infinity') AND e.payload->'facts' ? $3 /*scope*/
) r
ORDER BY deal_id, seq DESC
"""

# $2: the position of the stage the completion leads into (1-based, as in i_stages)
_PER_DEAL = """
CREATE TEMP TABLE i_fact_deals ON COMMIT DROP AS
SELECT r.deal_id, r.value,
       CASE WHEN jsonb_typeof(r.value) = 'number' THEN r.value::float8 END AS number,
       coalesce(bool_or(v.seq > r.seq AND st.pos > $2) OR bool_or(v.exit_type = 'won'), false) AS converted,
       coalesce(bool_or(v.exit_type = 'won'), false) AS won,
       coalesce(bool_or(v.exit_type = 'lost'), false) AS lost
FROM i_recorded r
LEFT JOIN (
    SELECT v.deal_id, v.seq, v.stage, CASE WHEN v.exit_at <= a.t THEN v.exit_type END AS exit_type
    FROM stage_visits v, (SELECT coalesce($1::timestamptz, 'infinity') AS t) a
    WHERE v.entered_at <= a.t
) v ON v.deal_id = r.deal_id
LEFT JOIN i_stages st ON st.stage = v.stage
GROUP BY r.deal_id, r.value
"""

_COUNTS = """
count(*) AS deals,
count(*) FILTER (WHERE converted) AS converted,
count(*) FILTER (WHERE converted OR won OR lost) AS settled,
count(*) FILTER (WHERE won) AS won,
count(*) FILTER (WHERE lost) AS lost
"""

_BY_VALUE = f"SELECT value, {_COUNTS} FROM i_fact_deals GROUP BY value"

_EDGES = "SELECT percentile_cont($1::float8[]) WITHIN GROUP (ORDER BY number) FROM i_fact_deals"

_BY_BUCKET = f"""
SELECT (SELECT count(*) FROM unnest($1::float8[]) AS edge WHERE number > edge) AS bucket, {_COUNTS}
FROM i_fact_deals WHERE number IS NOT NULL GROUP BY 1
"""


def label_of(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def number_text(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


async def compute(
    pool: asyncpg.Pool, d: ProcessDefinition, stage: str, spec: FactSpec, scope: Scope, buckets: int = 4
) -> FactOutcomes:
    """The outcomes per value of `stage`'s fact `spec`, compared as its type's entry in
    `definitions.fact_types` says (value by value, or in buckets), for a fact of a pre-sale stage
    (the caller checks)."""
    analysis = spec.kind.analysis
    if analysis is Analysis.none:
        raise ValueError(f"{spec.type} facts are not compared by value")
    nxt = d.next_stage(stage)
    next_pos = d.index(nxt) + 1 if nxt else 1_000_000
    numeric = analysis is Analysis.numeric
    async with snapshot(pool, d, scope, owners=False) as conn:
        await conn.execute(scoped(_RECORDED, scope), scope.process, stage, spec.fact, scope.as_of)
        await conn.execute("ANALYZE i_recorded")  # few deals: their visits are read by deal
        await conn.execute(_PER_DEAL, scope.as_of, next_pos)
        if numeric:
            quantiles = [k / buckets for k in range(1, buckets)]
            found = await conn.fetchval(_EDGES, quantiles)
            edges = sorted(set(found or []))
            rows = await conn.fetch(_BY_BUCKET, edges)
        else:
            rows = await conn.fetch(_BY_VALUE)
    if numeric:
        groups = _buckets(edges, {r["bucket"]: r for r in rows})
    else:
        groups = _values(spec, {_key(r["value"]): r for r in rows})
    return _assemble(d, stage, spec, scope, nxt, buckets if numeric else None, groups)


def _key(value: Any) -> str:
    """A stored value (jsonb, as text) as a dictionary key."""
    return json.dumps(json.loads(value) if isinstance(value, str) else value)


def _values(spec: FactSpec, rows: dict[str, Any]) -> list[tuple[Any, str, float | None, float | None, Any]]:
    """Every value the type declares, in order (booleans: yes, then no; a choice: its options),
    then any other value recorded, sorted."""
    declared: list[Any] = spec.kind.declared(spec)
    keys = [json.dumps(v) for v in declared]
    keys += sorted(k for k in rows if k not in keys)
    return [(json.loads(k), label_of(json.loads(k)), None, None, rows.get(k)) for k in keys]


def _buckets(edges: list[float], rows: dict[int, Any]) -> list[tuple[Any, str, float | None, float | None, Any]]:
    out: list[tuple[Any, str, float | None, float | None, Any]] = []
    bounds = [None, *edges, None]
    for i in range(len(edges) + 1):
        low, high = bounds[i], bounds[i + 1]
        if low is None and high is None:
            label = "all"
        elif low is None:
            label = f"<= {number_text(high)}"  # type: ignore[arg-type]
        elif high is None:
            label = f"> {number_text(low)}"
        else:
            label = f"{number_text(low)}-{number_text(high)}"
        out.append((None, label, low, high, rows.get(i)))
    return out


def _assemble(
    d: ProcessDefinition,
    stage: str,
    spec: FactSpec,
    scope: Scope,
    nxt: str | None,
    buckets: int | None,
    groups: list[tuple[Any, str, float | None, float | None, Any]],
) -> FactOutcomes:
    def n(row: Any, column: str) -> int:
        return int(row[column]) if row is not None else 0

    conversion = [Group(label, n(r, "converted"), n(r, "settled")) for _, label, _, _, r in groups]
    wins = [Group(label, n(r, "won"), n(r, "won") + n(r, "lost")) for _, label, _, _, r in groups]
    families = ([conversion] if nxt else []) + [wins]
    kinds = (["conversion"] if nxt else []) + ["win"]

    def wording(family: int, label: str, rate: float, rest: float, p: float) -> str:
        numbers = f"({rate:.0%} vs {rest:.0%} for the other values, {p_text(p)})"
        if kinds[family] == "conversion":
            return f"{spec.fact}={label} converts {'better' if rate > rest else 'worse'} out of {nxt} {numbers}"
        return f"{spec.fact}={label} wins {'more' if rate > rest else 'less'} often {numbers}"

    tested = split_off(families, wording)
    found_conversion = tested[0] if nxt else None
    found_wins = tested[-1]
    all_won = sum(g.successes for g in wins)
    values = [
        ValueOutcome(
            value=value,
            label=label,
            low=low,
            high=high,
            deals=n(r, "deals"),
            open=n(r, "deals") - n(r, "settled"),
            won_share=n(r, "won") / all_won if all_won else None,
            conversion=found_conversion[label] if found_conversion else None,
            win_rate=found_wins[label],
        )
        for value, label, low, high, r in groups
    ]
    verdicts = []
    for family in tested:
        named = sorted((t for t in family.values() if t.significant), key=lambda t: t.p_adjusted or 0)
        verdicts += [t.verdict for t in named]
    notes = []
    if nxt is None:
        notes.append(f"completing {stage} wins the deal, so its facts have no next stage to convert to")
        if all_won and not sum(g.n - g.successes for g in wins):
            notes.append(
                f"every deal with a recorded {spec.fact} was won: the fact is recorded by the win itself, "
                "so its values cannot be told apart by outcome (each value's share of the wins is shown, "
                "but a value used more often has more wins without working better); record it on the "
                f"deals lost at {stage} too (a loss records the facts known then) to compare win rates"
            )
    return FactOutcomes(
        filters=scope,
        stage=stage,
        fact=spec.fact,
        type=spec.type,
        next_stage=nxt,
        buckets=buckets,
        alpha=ALPHA,
        min_deals=MIN_DEALS,
        values=values,
        conversion_overall=_overall(conversion) if nxt else None,
        win_rate_overall=_overall(wins),
        verdicts=verdicts,
        notes=notes,
    )


def _overall(groups: list[Group]) -> OverallTest | None:
    """All values at once: chi-square, or Fisher's exact test for two values with a small count."""
    table = [[g.successes, g.n - g.successes] for g in groups if g.n]
    result = chi_square(table)
    if result is None:
        return None
    if len(table) == 2 and result.min_expected < 5:
        (a, b), (c, d) = table
        return OverallTest(test="fisher", statistic=None, df=None, p=fisher_exact(a, b, c, d))
    return OverallTest(test="chi-square", statistic=result.statistic, df=result.df, p=result.p)
