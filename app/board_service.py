"""A process's pipeline board: a column per stage with its deals, a count and a weighted value.

A deal's weight is its stage's probability in the deal's own pinned version, so deals still on an
older version count as that version says; a stage only older versions have gets its own column.
A column shows the deals longest in their stage first, up to a limit, and counts all of them.
"""

from __future__ import annotations

from pydantic import BaseModel

from app.context import Context
from store import deals, registry
from store.deals import BoardCard

# cards per column; a board of thousands of deals stays readable, and its counts stay exact
PER_STAGE = 50
PER_STAGE_ALONE = 1000  # when the board shows one stage only


class Column(BaseModel):
    stage: str
    title: str
    phase: str | None
    post_sale: bool
    deals: list[BoardCard]
    count: int  # every deal in the column, shown or not
    weighted_value: float


class Board(BaseModel):
    process: str
    version: str  # the latest version, whose stages set the columns and their order
    columns: list[Column]
    deals: int
    stamp: str  # changes whenever the board would: pages poll and redraw on a change


async def board(
    c: Context,
    process: str,
    *,
    owner: str | None = None,
    team: str | None = None,
    version: str | None = None,
    stage: str | None = None,
) -> Board:
    latest = await c.definition(process)
    probabilities = {}
    for d in await registry.list_all(c.pool):
        if d.name == process:
            for s in (await c.definition(process, d.version)).definition.stages:
                probabilities[(d.version, s.id)] = s.probability
    found = await deals.board(
        c.pool,
        process,
        probabilities,
        owner=owner,
        team=team,
        version=version,
        stage=stage,
        per_stage=PER_STAGE_ALONE if stage else PER_STAGE,
    )
    columns = {
        s.id: Column(
            stage=s.id, title=s.title, phase=s.phase, post_sale=s.post_sale, deals=[], count=0, weighted_value=0
        )
        for s in latest.definition.stages
        if stage is None or s.id == stage
    }
    for card in found.cards:
        assert card.stage is not None
        column = columns.get(card.stage)
        if column is None:
            title = f"{card.stage} (older versions)"
            column = Column(
                stage=card.stage, title=title, phase=None, post_sale=False, deals=[], count=0, weighted_value=0
            )
            columns[card.stage] = column
        column.deals.append(card)
        column.count, column.weighted_value = card.column_deals, card.column_weighted
    stamp = f"{found.deals}:{found.changed_at.isoformat() if found.changed_at else '-'}"
    return Board(
        process=process, version=latest.version, columns=list(columns.values()), deals=found.deals, stamp=stamp
    )
