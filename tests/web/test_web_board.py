"""The pipeline board over the projection: every deal counted and weighted by its own version's
stage probability, the longest in the stage shown first up to the column's limit, filters, and
the SLA and escalation badges the append keeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app import board_service
from client.api import DealflowClient
from definitions.loader import load_text
from domain.events import Escalated, SlaBreached, StageEntered
from store import registry
from store.projections.deal_rows import board_marks
from tests.support.web import app_over, http

DEFINITION = """
name: {name}
title: Board test
phases: [{{id: all, title: All}}]
stages:
  - {{id: first, title: First stage, phase: all, probability: {p1}}}
  - {{id: second, title: Second stage, phase: all, probability: 0.5}}
outcomes:
  won: {{from_stages: [second]}}
  lost: {{reasons: [no-budget]}}
"""


async def _deploy(pool: asyncpg.Pool, name: str, p1: float) -> str:
    pinned = load_text(DEFINITION.format(name=name, p1=p1))
    await registry.deploy(pool, pinned, deployed_by="tests")
    return pinned.version


async def _deal(pool: asyncpg.Pool, name: str, version: str, n: int, stage: str, **extra: object) -> None:
    columns = {
        "deal_id": f"{name}-{n:03d}",
        "process": name,
        "version": version,
        "owner": extra.get("owner", "rita"),
        "value": 1000.0,
        "status": "open",
        "stage": stage,
        "stage_entered_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        "last_seq": 2,
        "team": extra.get("team", "east"),
        "stage_sla_breaches": extra.get("breaches", 0),
        "stage_escalation": extra.get("rung", 0),
    }
    await pool.execute(
        f"INSERT INTO deals ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
        *columns.values(),
    )


async def test_columns_count_and_weigh_every_deal_and_show_the_longest_waiting(client: DealflowClient) -> None:
    name = f"board-{uuid.uuid4().hex[:6]}"
    old = await _deploy(client.pool, name, 0.1)
    new = await _deploy(client.pool, name, 0.2)
    for n in range(60):
        await _deal(client.pool, name, new, n, "first", owner="bob" if n % 2 else "rita")
    for n in range(60, 64):
        await _deal(client.pool, name, old, n, "first", team="west")
    await _deal(client.pool, name, new, 70, "second", breaches=1, rung=2)

    board = await board_service.board(client, name)
    first, second = board.columns
    assert (first.count, len(first.deals)) == (64, board_service.PER_STAGE)
    assert first.weighted_value == 60 * 1000 * 0.2 + 4 * 1000 * 0.1, "each deal weighs by its own version"
    assert [d.deal_id for d in first.deals][:2] == [f"{name}-000", f"{name}-001"], "longest in the stage first"
    assert (second.count, second.weighted_value) == (1, 500.0)

    only_bob = await board_service.board(client, name, owner="bob")
    assert only_bob.columns[0].count == 30
    west = await board_service.board(client, name, team="west")
    assert west.columns[0].count == 4 and west.columns[0].weighted_value == 400.0
    one_stage = await board_service.board(client, name, stage="first")
    assert [c.stage for c in one_stage.columns] == ["first"] and len(one_stage.columns[0].deals) == 64

    async with http(app_over(client)) as browser:
        page = (await browser.get("/board", params={"process": name})).text
        api = (await browser.get(f"/api/v1/processes/{name}/board")).json()
    assert "14 more in First stage" in page
    assert "SLA breached" in page and "escalated 2" in page
    assert [c["count"] for c in api["columns"]] == [64, 1]


@pytest.mark.unit
def test_the_card_badges_count_from_the_latest_stage_entry() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    due = at + timedelta(days=1)
    breach = SlaBreached(seq=3, at=at, actor="dealflow", stage="first", due_at=due)
    rung = Escalated(seq=4, at=at, actor="dealflow", stage="first", level=2, notify="m", to="mona", due_at=due)
    entered = StageEntered(seq=5, at=at, actor="rita", stage="second", via="next")
    assert board_marks([breach, rung]) == (False, 1, 2), "no entry: the counts add to the card's"
    assert board_marks([breach, rung, entered]) == (True, 0, 0), "a new stage starts afresh"
    later = SlaBreached(seq=6, at=at, actor="dealflow", stage="second", due_at=due)
    assert board_marks([breach, entered, later]) == (True, 1, 0)
