"""A process's pipeline board: a column per stage with its deals, a count and a weighted value.

A deal's weight is its stage's probability in the deal's own pinned version, so deals still on an
older version count as that version says; a stage only older versions have gets its own column.
"""

from __future__ import annotations

from pydantic import BaseModel

from client.api import DealflowClient
from store.deals import DealRow


class Column(BaseModel):
    stage: str
    title: str
    phase: str | None
    post_sale: bool
    deals: list[DealRow]
    weighted_value: float

    @property
    def count(self) -> int:
        return len(self.deals)


class Board(BaseModel):
    process: str
    version: str  # the latest version, whose stages set the columns' order
    columns: list[Column]
    stamp: str  # changes whenever any card would: pages poll and redraw on a change


async def board(
    c: DealflowClient, process: str, *, owner: str | None = None, team: str | None = None, version: str | None = None
) -> Board:
    latest = await c.definition(process)
    rows = await c.board(process, owner=owner, team=team, version=version)
    probability: dict[tuple[str, str], float] = {}
    for v in {r.version for r in rows} | {latest.version}:
        for s in (await c.definition(process, v)).definition.stages:
            probability[(v, s.id)] = s.probability
    columns = {
        s.id: Column(stage=s.id, title=s.title, phase=s.phase, post_sale=s.post_sale, deals=[], weighted_value=0.0)
        for s in latest.definition.stages
    }
    for r in rows:
        assert r.stage is not None
        column = columns.setdefault(
            r.stage,
            Column(
                stage=r.stage,
                title=f"{r.stage} (older versions)",
                phase=None,
                post_sale=False,
                deals=[],
                weighted_value=0.0,
            ),
        )
        column.deals.append(r)
        column.weighted_value += (r.value or 0.0) * probability.get((r.version, r.stage), 0.0)
    stamp = str(hash(tuple((r.deal_id, r.last_seq, r.owner) for r in rows)))
    return Board(process=process, version=latest.version, columns=list(columns.values()), stamp=stamp)
