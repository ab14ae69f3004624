"""Histories the aggregates' and the projections' tests both build: a migration at the end, an event
out of time order, and a definition deployed by hand."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from definitions.model import ProcessDefinition
from domain.events import DealEvent, MigratedToVersion
from domain.state import fold


def migrated(d: ProcessDefinition, events: list[DealEvent]) -> list[DealEvent]:
    """An open deal's history with a migration to v2 at its end."""
    state = fold(events)
    last = events[-1]
    return [
        *events,
        MigratedToVersion(
            seq=last.seq + 1,
            at=last.at + timedelta(hours=1),
            actor="ops",
            stage=state.stage,
            from_version="v1",
            to_version="v2",
            content_hash="v2" * 8,
            from_stage=state.stage,
            stage_map={s.id: s.id for s in d.stages},
        ),
    ]


def out_of_order(events: list[DealEvent]) -> list[DealEvent]:
    """The history with one event dated before the one that precedes it."""
    k = len(events) // 2
    early = events[k - 2].at - timedelta(minutes=7)
    return [e.model_copy(update={"at": early}) if i == k else e for i, e in enumerate(events)]


async def deploy(pool: asyncpg.Pool, d: ProcessDefinition, version: str) -> None:
    await pool.execute(
        "INSERT INTO definitions (name, version, content_hash, body, deployed_by) VALUES ($1, $2, $3, $4::jsonb, 't')",
        d.name,
        version,
        version * 8,
        d.model_dump_json(),
    )
