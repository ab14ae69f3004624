"""Time lost at handoffs, checked against a plain Python computation over the same events.

Deals of the shipped sales-factory-teams process are made with the pure decisions (so their
events are what the workflow records): handed over at each team's first stage, then taken up by
the new owner after a while, or first touched by someone else, reassigned by an escalation, lost
by a manager, or left waiting. One stage is planted slow; the verdicts must name it, and no other.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from analytics.handoff_verdicts import HandoffFigures, HandoffMetrics
from definitions.loader import load_file, shipped
from definitions.model import ProcessDefinition
from domain import decide, handoffs
from domain.activity_io import AppendEvents, DealSnapshot
from domain.commands import CompleteStage, LoseDeal, StartDeal
from domain.events import DealEvent, Escalated, HandedOff
from domain.state import DealState, fold
from store import event_log
from store.handoffs import handoffs as handoff_metrics
from tests.support.cli import dealflow

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
FACTS: dict[str, dict[str, Any]] = {
    "suspect": {"source": "inbound"},
    "qualifying": {"active_need": "yes", "shortlisted": "yes"},
    "funnel-top": {"expected_close": "2027-01-15"},
    "funnel-middle": {"proposal_value": "12000"},
    "funnel-bottom": {"signed": "yes"},
    "customer": {"rebuy_intent": "none"},
}
SLOW_STAGE = "funnel-top"


def _definition() -> ProcessDefinition:
    d = load_file(next(p for p in shipped() if p.stem == "sales-factory-teams")).definition
    return d.model_copy(update={"name": f"handoffs-{uuid.uuid4().hex[:8]}"})


class Deal:
    def __init__(self, d: ProcessDefinition, deal_id: str, rng: random.Random, at: datetime):
        self.d, self.rng, self.at = d, rng, at
        self.events: list[DealEvent] = decide.start(
            StartDeal(deal_id=deal_id, owner="rita", actor="rita"), d, "v", "h", at
        )
        self.state: DealState = fold(self.events)
        self.n = 0

    def record(self, events: list[DealEvent]) -> None:
        self.events += events
        self.state = fold(events, self.state)

    def later(self, hours: float) -> None:
        self.at += timedelta(hours=hours)

    def complete(self, actor: str) -> None:
        assert self.state.stage is not None
        self.n += 1
        cmd = CompleteStage(request_id=f"r{self.n}", actor=actor, stage=self.state.stage, facts=FACTS[self.state.stage])
        self.record(decide.complete(self.state, self.d, cmd, self.at))

    def hand_over_if_due(self) -> bool:
        assert self.state.stage is not None
        team = handoffs.team_to_hand_to(self.d, self.state, self.state.stage)
        if team is None:
            return False
        self.later(0.01)
        member = self.rng.choice(team.members)
        self.record(handoffs.hand_off(self.state, self.state.stage, team, member, "test", self.at))
        return True


def simulate(d: ProcessDefinition, deal_id: str, rng: random.Random, at: datetime) -> list[DealEvent]:
    deal = Deal(d, deal_id, rng, at)
    while deal.state.stage is not None:
        if not deal.hand_over_if_due():
            deal.later(rng.uniform(1, 8))
            deal.complete(deal.state.owner)
            continue
        stage = deal.state.stage
        roll = rng.random()
        wait = rng.uniform(24, 96) if stage == SLOW_STAGE else rng.uniform(0.5, 8)
        if roll < 0.08:
            return deal.events  # the new owner has not touched it yet: waiting
        if roll < 0.16:  # a manager steps in first; the new owner may act after that
            deal.later(rng.uniform(0.1, 2))
            deal.complete("manager")
        elif roll < 0.22:  # an escalation gives the deal to someone else before the new owner acts
            deal.later(rng.uniform(1, 4))
            rung = dict(level=1, notify="manager", to="manager", reassigned_to="maria", due_at=deal.at)
            deal.record(decide.system_event(deal.state, Escalated, deal.at, **rung))
            deal.later(1)
            deal.complete("maria")
        elif roll < 0.28 and deal.state.status == "open":  # lost by someone else
            deal.later(rng.uniform(1, 4))
            deal.record(
                decide.lose(deal.state, d, LoseDeal(request_id="lost", actor="manager", reason="no-decision"), deal.at)
            )
            return deal.events
        else:
            deal.later(wait)
            deal.complete(deal.state.owner)
    return deal.events


# --- the independent computation --------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def outcome(events: list[DealEvent], i: int) -> tuple[str, float | None]:
    """What became of the handoff at `events[i]`: taken up (with the time lost), passed on, ended
    or waiting."""
    h = events[i]
    assert isinstance(h, HandedOff)
    later = events[i + 1 :]
    change = next(
        (j for j, e in enumerate(later) if isinstance(e, HandedOff) or (isinstance(e, Escalated) and e.reassigned_to)),
        None,
    )
    before_change = later if change is None else later[:change]
    acted = next((e for e in before_change if e.actor == h.to_owner), None)
    if acted is not None:
        return "taken_up", (acted.at - h.at).total_seconds()
    if change is not None:
        return "passed_on", None
    ended = any(
        e.type in {"DealLost", "DealClosed"}
        or (e.type == "DealWon" and not any(x.type == "StageEntered" for x in later[j + 1 :]))
        for j, e in enumerate(later)
    )
    return ("ended" if ended else "waiting"), None


def expected(deals: Iterable[list[DealEvent]]) -> dict[tuple[str | None, str | None], tuple[Counter[str], list[float]]]:
    """{(team, stage): (counts, times)}, with (team, None) for teams and (None, None) for the process."""
    out: dict[tuple[str | None, str | None], tuple[Counter[str], list[float]]] = defaultdict(lambda: (Counter(), []))
    for events in deals:
        for i, e in enumerate(events):
            if not isinstance(e, HandedOff):
                continue
            kind, seconds = outcome(events, i)
            for key in ((e.team, e.stage), (e.team, None), (None, None)):
                counts, times = out[key]
                counts["handoffs"] += 1
                counts[kind] += 1
                if seconds is not None:
                    times.append(seconds)
    return dict(out)


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1, abs(b)))


def assert_matches(got: HandoffFigures, counts: Counter[str], times: list[float]) -> None:
    assert (got.handoffs, got.taken_up, got.waiting, got.passed_on, got.ended) == (
        counts["handoffs"],
        counts["taken_up"],
        counts["waiting"],
        counts["passed_on"],
        counts["ended"],
    ), (got.team, got.stage)
    assert close(got.median_seconds, pct(times, 0.5)) and close(got.p90_seconds, pct(times, 0.9))


async def _append(pool: asyncpg.Pool, deals: list[list[DealEvent]]) -> None:
    for events in deals:
        state = fold(events)
        await event_log.append(
            pool, AppendEvents(deal_id=state.deal_id, events=events, snapshot=DealSnapshot.of(state))
        )


@pytest.fixture
async def planted(pool: asyncpg.Pool) -> tuple[ProcessDefinition, list[list[DealEvent]]]:
    d = _definition()
    rng = random.Random(16)
    deals = [simulate(d, f"{d.name}-{i:03d}", rng, T0 + timedelta(minutes=i)) for i in range(120)]
    await _append(pool, deals)
    return d, deals


async def test_every_figure_matches_a_plain_computation_and_only_the_planted_stage_is_slow(
    pool: asyncpg.Pool, planted: tuple[ProcessDefinition, list[list[DealEvent]]]
) -> None:
    d, deals = planted
    want = expected(deals)
    kinds = want[(None, None)][0]
    # the corpus holds every outcome, so each branch of the definition is exercised
    assert min(kinds["taken_up"], kinds["waiting"], kinds["passed_on"], kinds["ended"]) > 0, kinds
    got = await handoff_metrics(pool, d.name)
    assert [(p.process, p.team, p.stage) for p in got.processes] == [(d.name, None, None)]
    assert_matches(got.processes[0], *want[(None, None)])
    assert sorted((t.team, t.stage) for t in got.teams) == sorted(k for k in want if k[0] and not k[1])
    for t in got.teams:
        assert_matches(t, *want[(t.team, None)])
    assert sorted((s.team, s.stage) for s in got.stages) == sorted(k for k in want if k[1])
    # each team's first stage, and later ones when an escalation gave the deal to an outsider
    assert {s.stage for s in got.stages} >= {"suspect", "funnel-top", "customer"}
    for s in got.stages:
        assert_matches(s, *want[(s.team, s.stage)])
    assert [(s.stage, s.team) for s in got.slow()] == [(SLOW_STAGE, "account-executives")]
    [slow] = got.slow()
    assert slow.verdict.startswith("slow: handoffs into funnel-top (account-executives) wait ")
    judged = {s.stage: s.verdict for s in got.stages if s.p_value is not None}
    assert set(judged) >= {"suspect", "funnel-top", "customer"}
    for s in got.stages:
        if s.stage in judged and not s.slow:
            # the p is of the direction the verdict is about: slower. Stages taken up sooner than the
            # others (every one but the planted one here) have a p near 1, not that of "faster"
            assert s.p_value is not None and s.p_value > 0.5, (s.stage, s.p_value)
            assert s.verdict.startswith("not slower: taken up as soon or sooner ("), s.verdict
            assert f"p = {s.p_value:.2g} that they wait longer)" in s.verdict
        elif not s.slow:  # an escalation's outsider was handed over at a later stage only a few times
            assert s.verdict.startswith("not enough handoffs taken up to judge ("), s.verdict


async def test_no_verdict_on_too_few_handoffs_and_every_process_apart(pool: asyncpg.Pool) -> None:
    d = _definition()
    deals = [simulate(d, f"{d.name}-{i}", random.Random(i), T0) for i in range(3)]
    await _append(pool, deals)
    got = await handoff_metrics(pool, d.name)
    assert got.stages and all(s.verdict.startswith("not enough handoffs taken up to judge") for s in got.stages)
    everything = await handoff_metrics(pool)
    assert d.name in {p.process for p in everything.processes}
    assert [p for p in everything.processes if p.process == d.name] == got.processes


async def test_the_cli_prints_the_figures_and_the_verdicts(
    cli_env: dict[str, str], pool: asyncpg.Pool, planted: tuple[ProcessDefinition, list[list[DealEvent]]]
) -> None:
    d, _ = planted
    as_json = await dealflow(cli_env, "metrics", "handoffs", "--process", d.name, "--json")
    assert as_json.code == 0, as_json.err
    assert HandoffMetrics.model_validate(as_json.json()) == await handoff_metrics(pool, d.name)
    text = await dealflow(cli_env, "metrics", "handoffs", "--process", d.name)
    assert text.code == 0, text.err
    assert f"{d.name}: " in text.out and "still waiting" in text.out
    assert "slow: handoffs into funnel-top (account-executives) wait " in text.out
    refused = await dealflow(cli_env, "metrics", "--owner", "x", "handoffs")
    assert refused.code != 0 and "metrics handoffs does not take --owner" in refused.err
