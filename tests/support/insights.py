"""Deals with planted effects, for the insights' tests: who converts where, which close wins.

The events are made with the engine's own decision functions (`domain.decide`), so they are what
a deal workflow records, plus the hand-offs and follow-up touches the workflow adds. A `Plan`
says which effects to plant: one rep better only in the first phase, one close technique twice as
likely to win, one rep slow to act after a hand-off (a delay only: it must not show up as a
difference in conversion). Everything else is drawn the same for every rep and every value, so
any other verdict is a false alarm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from definitions.model import FactSpec, Notify, ProcessDefinition, Stage, WonOutcome
from domain import decide
from domain.activity_io import AppendEvents, DealSnapshot
from domain.commands import CompleteStage, LoseDeal, MoveStage, RecordResponse, StartDeal
from domain.events import (
    CadenceCompleted,
    CadenceStarted,
    CadenceStopped,
    DealEvent,
    DealStarted,
    HandedOff,
    TouchSent,
)
from domain.reminders import Rung
from domain.state import DealState, fold
from store import event_log, history_load

T0 = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
REPS = tuple(f"rep-{i}" for i in range(1, 9))
BUDGETS = ["5000", "10000", "20000", "20000", "50000", "100000"]
CURRENCIES = ["NOK", "EUR", "EUR", "sek"]  # as reps type them: sek is stored as SEK


@dataclass(frozen=True)
class Plan:
    strong_rep: str | None = None  # loses fewer deals in the first phase, and only there
    good_technique: str | None = None  # wins twice as often after this close
    slow_rep: str | None = None  # takes ten days to act on a deal handed to them
    handoff_share: float = 0.5  # deals handed to another rep when they enter the second phase
    escalation_share: float = 0.03  # stage visits escalated to a reassignment


def with_contract(base: ProcessDefinition, name: str) -> ProcessDefinition:
    """`base` (the seven-stage process) with a contract stage after closing, from which deals are
    won: the close technique is then recorded before the outcome, so it can be judged by it."""
    contract = Stage(id="contract", title="Contract", phase="close", probability=0.9)
    stages = list(base.stages)
    stages.insert([s.id for s in stages].index("closing") + 1, contract)
    outcomes = base.outcomes.model_copy(update={"won": WonOutcome(from_stages=["contract"])})
    return base.model_copy(update={"name": name, "stages": stages, "outcomes": outcomes})


def with_currency(base: ProcessDefinition, name: str) -> ProcessDefinition:
    """`base` (the seven-stage process) asking for the buyer's currency to leave needs-assessment."""
    stages = [
        s.model_copy(update={"exit_criteria": [*s.exit_criteria, FactSpec(fact="paid_in", type="currency")]})
        if s.id == "needs-assessment"
        else s
        for s in base.stages
    ]
    return base.model_copy(update={"name": name, "stages": stages})


def _fact(spec_type: str, options: list[str], rng: random.Random) -> str:
    match spec_type:
        case "boolean":
            return rng.choice(["yes", "no"])
        case "number":
            return rng.choice(BUDGETS)
        case "integer":
            return str(rng.randrange(0, 4))
        case "date":
            return "2026-03-01"
        case "choice":
            return rng.choice(options)
        case "currency":
            return rng.choice(CURRENCIES)
        case _:
            return "noted"


class _Deal:
    """One deal being made: its events and state so far, and its clock."""

    def __init__(self, d: ProcessDefinition, deal_id: str, owner: str, at: datetime) -> None:
        self.d = d
        self.at = at
        self.events = decide.start(
            StartDeal(deal_id=deal_id, owner=owner, actor=owner, value=10_000.0), d, "v1", "h", at
        )
        self.state: DealState = fold(self.events)
        self.n = 0

    def add(self, new: list[DealEvent]) -> None:
        self.events.extend(new)
        self.state = fold(new, self.state)

    def tick(self, rng: random.Random, minutes: int = 2000) -> None:
        self.at += timedelta(minutes=rng.randrange(1, minutes))

    def rid(self) -> str:
        self.n += 1
        return f"r{self.n}"


def simulate(d: ProcessDefinition, deal_id: str, rng: random.Random, plan: Plan) -> list[DealEvent]:
    """One deal through `d` (the seven-stage process, with or without a contract stage)."""
    first_phase = d.stages[0].phase
    deal = _Deal(d, deal_id, rng.choice(REPS), T0 + timedelta(hours=rng.randrange(0, 24 * 50)))
    phase = first_phase
    backs = 0
    technique: str | None = None
    while deal.state.status != "lost" and deal.state.stage is not None and len(deal.events) < 150:
        stage = d.stage(deal.state.stage)
        deal.tick(rng)
        if stage.phase != phase and not stage.post_sale:
            phase = stage.phase
            if rng.random() < plan.handoff_share:
                to = rng.choice([r for r in REPS if r != deal.state.owner])
                deal.add(
                    decide.system_event(
                        deal.state,
                        HandedOff,
                        deal.at,
                        stage=stage.id,
                        from_owner=deal.state.owner,
                        to_owner=to,
                        team="closers",
                        rule="round-robin",
                        reason=f"stage {stage.id} belongs to team closers; round-robin chose {to}",
                    )
                )
                if to == plan.slow_rep:
                    deal.at += timedelta(days=10)
        if rng.random() < plan.escalation_share and not stage.post_sale:
            rung = Rung(level=1, stage=stage.id, due_at=deal.at, notify=Notify.manager, reassign_to=rng.choice(REPS))
            deal.add(decide.remind(deal.state, rung, deal.at))
        if stage.cadence and deal.state.cadence is None:
            _follow_up(deal, stage, rng)
        roll = rng.random()
        if roll < 0.04:
            break  # stalls: stays open
        if stage.post_sale:
            facts = {f.fact: _fact(f.type, f.options, rng) for f in stage.exit_criteria}
            deal.add(
                decide.complete(
                    deal.state, d, CompleteStage(request_id=deal.rid(), actor="x", stage=stage.id, facts=facts), deal.at
                )
            )
            continue
        lose = 0.15
        if stage.phase == first_phase:
            lose = 0.07 if deal.state.owner == plan.strong_rep else 0.22
        if stage.id == "contract":
            win = 0.6 if technique == plan.good_technique else 0.3
            lose = 1 - 0.04 - win
        if roll < 0.04 + lose:
            reason = rng.choice(d.outcomes.lost.reasons if d.outcomes.lost else ["x"])
            deal.add(decide.lose(deal.state, d, LoseDeal(request_id=deal.rid(), actor="x", reason=reason), deal.at))
            break
        part = [s.id for s in d.pre_sale]
        i = part.index(stage.id)
        if stage.moves.skip.allowed and i + 2 < len(part) and rng.random() < 0.06:
            to = part[i + 2]
            deal.add(
                decide.move(deal.state, d, MoveStage(request_id=deal.rid(), actor="x", to=to, reason="s"), deal.at)
            )
            continue
        if i > 0 and backs < 1 and rng.random() < 0.05:
            backs += 1
            to = rng.choice(part[:i])
            deal.add(
                decide.move(deal.state, d, MoveStage(request_id=deal.rid(), actor="x", to=to, reason="b"), deal.at)
            )
            phase = d.stage(to).phase
            continue
        facts = {}
        for f in stage.exit_criteria:
            if f.fact == "close_technique":
                technique = rng.choice(f.options)
                facts[f.fact] = technique
            else:
                facts[f.fact] = _fact(f.type, f.options, rng)
        command = CompleteStage(request_id=deal.rid(), actor="x", stage=stage.id, facts=facts)
        deal.add(decide.complete(deal.state, d, command, deal.at))
    return deal.events


def _follow_up(deal: _Deal, stage: Stage, rng: random.Random) -> None:
    """A cadence of up to six touches, which the buyer may answer after any of them."""
    run = f"c{deal.rid()}"
    deal.add(
        decide.system_event(
            deal.state, CadenceStarted, deal.at, stage=stage.id, cadence=str(stage.cadence), cadence_run=run, touches=6
        )
    )
    for k in range(1, 7):
        deal.tick(rng, 600)
        deal.add(
            decide.system_event(
                deal.state,
                TouchSent,
                deal.at,
                stage=stage.id,
                cadence_run=run,
                touch_no=k,
                channel="email",
                message_id=f"m{k}",
            )
        )
        answer = rng.random()
        if answer < 0.18 or answer > 0.97:
            kind = "replied" if answer < 0.12 else "meeting_booked" if answer < 0.18 else "unsubscribed"
            cmd = RecordResponse(request_id=deal.rid(), actor="buyer", kind=kind)
            deal.add(decide.respond(deal.state, deal.d, cmd, deal.at))
            deal.add(
                decide.system_event(deal.state, CadenceStopped, deal.at, stage=stage.id, cadence_run=run, reason=kind)
            )
            return
    deal.add(
        decide.system_event(deal.state, CadenceCompleted, deal.at, stage=stage.id, cadence_run=run, touches_sent=6)
    )


def generate(d: ProcessDefinition, n: int, seed: int, plan: Plan) -> list[list[DealEvent]]:
    rng = random.Random(seed)
    return [simulate(d, f"{d.name}-{i:05d}", rng, plan) for i in range(n)]


async def append_all(pool: asyncpg.Pool, deals: list[list[DealEvent]]) -> None:
    """Through the event log's own append, as the workflows do (the projections with it)."""
    for events in deals:
        started = events[0]
        assert isinstance(started, DealStarted)
        batch = AppendEvents(deal_id=started.deal_id, events=events, snapshot=DealSnapshot.of(fold(events)))
        await event_log.append(pool, batch)


async def copy_all(pool: asyncpg.Pool, d: ProcessDefinition, deals: list[list[DealEvent]]) -> None:
    """In bulk, as imported history is (`store.history_load`): the same rows the append writes (the
    log, the deal projection, the stage visits), many times faster."""
    histories = []
    for events in deals:
        started = events[0]
        assert isinstance(started, DealStarted)
        histories.append(history_load.History(started.deal_id, d.name, started.version, events))
    async with pool.acquire() as conn, conn.transaction():
        await history_load.load(conn, histories)


# --- follow-up with a known answer time and a known giving up ----------------------------------

FOLLOW_UP_TOUCHES = 8
# seed 004: 44% of sellers give up after one touch, 22% after two, 14% after three, 12% after
# four; the other 8% follow up to the cadence's last touch
SEED_004_GIVE_UP: tuple[tuple[int, float], ...] = ((1, 0.44), (2, 0.22), (3, 0.14), (4, 0.12), (8, 0.08))


def follow_up_process(name: str) -> ProcessDefinition:
    """One stage that starts an eight-touch cadence, and a deal may be lost there at any time."""
    touches = [{"channel": "email", "template": f"Touch {k}", "delay": "1 day"} for k in range(1, 9)]
    return ProcessDefinition.model_validate(
        {
            "name": name,
            "phases": [{"id": "p", "title": "Phase"}],
            "stages": [
                {"id": "reach", "title": "Reach", "phase": "p", "probability": 0.1, "cadence": "eight"},
                {"id": "close", "title": "Close", "phase": "p", "probability": 0.6},
            ],
            "outcomes": {"won": {}, "lost": {"reasons": ["gave-up"]}},
            "cadences": [{"id": "eight", "touches": touches}],
        }
    )


def draw(rng: random.Random, weights: tuple[tuple[int | None, float], ...]) -> int | None:
    roll, total = rng.random(), 0.0
    for value, weight in weights:
        total += weight
        if roll < total:
            return value
    return weights[-1][0]


def follow_up_deal(
    d: ProcessDefinition,
    deal_id: str,
    owner: str,
    at: datetime,
    rng: random.Random,
    answer_at: int | None,
    give_up_after: int,
) -> list[DealEvent]:
    """A deal whose buyer answers after touch `answer_at` (None: never) and whose seller gives up
    (loses it) after touch `give_up_after` with no answer; one who sent every touch and heard
    nothing either loses it or, one time in four, leaves it open."""
    deal = _Deal(d, deal_id, owner, at)
    run = f"c{deal.rid()}"
    deal.add(
        decide.system_event(
            deal.state,
            CadenceStarted,
            deal.at,
            stage="reach",
            cadence="eight",
            cadence_run=run,
            touches=FOLLOW_UP_TOUCHES,
        )
    )
    for k in range(1, FOLLOW_UP_TOUCHES + 1):
        deal.tick(rng, 600)
        deal.add(
            decide.system_event(
                deal.state,
                TouchSent,
                deal.at,
                stage="reach",
                cadence_run=run,
                touch_no=k,
                channel="email",
                message_id=f"m{k}",
            )
        )
        deal.tick(rng, 300)
        if answer_at == k:
            cmd = RecordResponse(request_id=deal.rid(), actor="buyer", kind="replied")
            deal.add(decide.respond(deal.state, d, cmd, deal.at))
            deal.add(
                decide.system_event(
                    deal.state, CadenceStopped, deal.at, stage="reach", cadence_run=run, reason="replied"
                )
            )
            return deal.events
        if give_up_after == k and k < FOLLOW_UP_TOUCHES:
            break
    else:
        deal.add(
            decide.system_event(
                deal.state,
                CadenceCompleted,
                deal.at,
                stage="reach",
                cadence_run=run,
                touches_sent=FOLLOW_UP_TOUCHES,
            )
        )
        if rng.random() < 0.25:
            return deal.events  # still open
    deal.add(decide.lose(deal.state, d, LoseDeal(request_id=deal.rid(), actor=owner, reason="gave-up"), deal.at))
    return deal.events
