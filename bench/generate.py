"""Deals generated with the engine's own pure decision functions, for tests and benchmarks.

The events are exactly what the deal workflow would record (the same `decide` and `fold`), with
skips, back-moves, re-entries, losses, wins, SLA breaches and follow-up touches mixed in, at
timestamps spread over weeks. No Temporal server is needed to make them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from cli.demo import fact_value
from definitions.model import Notify, ProcessDefinition
from domain import decide
from domain.commands import CompleteStage, LoseDeal, MoveStage, StartDeal
from domain.events import CadenceStarted, DealEvent, TouchSent
from domain.reminders import Rung
from domain.state import fold

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
OWNERS = ["ann", "bo", "cy"]


def simulate(d: ProcessDefinition, version: str, deal_id: str, rng: random.Random) -> list[DealEvent]:
    at = T0 + timedelta(hours=rng.randrange(0, 24 * 60))
    start = StartDeal(deal_id=deal_id, owner=rng.choice(OWNERS), actor="gen", value=float(rng.randrange(1, 100) * 100))
    events = decide.start(start, d, version, "h", at)
    state = fold(events)
    backs = 0
    n = 0

    def add(new: list[DealEvent]) -> None:
        nonlocal state
        events.extend(new)
        state = fold(new, state)

    while not state.is_finished and state.stage is not None and len(events) < 60:
        n += 1
        at += timedelta(minutes=rng.randrange(1, 3000))
        stage = d.stage(state.stage)
        roll = rng.random()
        if stage.reminder and rng.random() < 0.15 and state.reminders_fired == 0:
            add(decide.remind(state, Rung(level=0, stage=stage.id, due_at=at, notify=Notify.owner), at))
        if stage.cadence and state.cadence is None and rng.random() < 0.6:
            run = f"c#{n}"
            add(
                decide.system_event(
                    state, CadenceStarted, at, stage=stage.id, cadence=stage.cadence, cadence_run=run, touches=6
                )
            )
            for k in range(rng.randrange(0, 8)):
                add(
                    decide.system_event(
                        state,
                        TouchSent,
                        at,
                        stage=stage.id,
                        cadence_run=run,
                        touch_no=k + 1,
                        channel="email",
                        message_id=f"m{k}",
                    )
                )
        if roll < 0.06:
            break  # stalls: stays open
        if state.status == "open" and stage.id in d.lost_from() and roll < 0.16:
            assert d.outcomes.lost is not None
            add(
                decide.lose(
                    state, d, LoseDeal(request_id=f"r{n}", actor="gen", reason=rng.choice(d.outcomes.lost.reasons)), at
                )
            )
            break
        part = [s.id for s in (d.post_sale if stage.post_sale else d.pre_sale)]
        i = part.index(stage.id)
        if stage.moves.skip.allowed and i + 2 < len(part) and roll < 0.3:
            add(
                decide.move(
                    state,
                    d,
                    MoveStage(request_id=f"r{n}", actor="gen", to=rng.choice(part[i + 2 :]), reason="skip"),
                    at,
                )
            )
            continue
        if stage.moves.back.allowed and i > 0 and backs < 2 and roll < 0.4:
            backs += 1
            add(
                decide.move(
                    state, d, MoveStage(request_id=f"r{n}", actor="gen", to=rng.choice(part[:i]), reason="back"), at
                )
            )
            continue
        facts = {f.fact: fact_value(f, rng) for f in stage.exit_criteria if f.fact not in state.facts.get(stage.id, {})}
        add(decide.complete(state, d, CompleteStage(request_id=f"r{n}", actor="gen", stage=stage.id, facts=facts), at))
    return events
