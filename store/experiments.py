"""The experiment registry: which experiment splits a process's new deals, since when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from definitions.experiment import Experiment


class ExperimentRefused(ValueError):
    """An experiment that cannot start (or stop) as asked; the message says why."""


@dataclass(frozen=True)
class ExperimentRecord:
    experiment: Experiment
    started_by: str
    started_at: datetime
    stopped_by: str | None
    stopped_at: datetime | None

    @property
    def running(self) -> bool:
        return self.stopped_at is None


def _record(r: asyncpg.Record) -> ExperimentRecord:
    return ExperimentRecord(
        Experiment.model_validate_json(r["body"]), r["started_by"], r["started_at"], r["stopped_by"], r["stopped_at"]
    )


async def start(pool: asyncpg.Pool, exp: Experiment, *, started_by: str) -> ExperimentRecord:
    async with pool.acquire() as conn, conn.transaction():
        deployed = {
            r["version"] for r in await conn.fetch("SELECT version FROM definitions WHERE name = $1", exp.process)
        }
        if not deployed:
            raise ExperimentRefused(f"no process {exp.process!r} is deployed")
        unknown = [a.version for a in exp.arms if a.version not in deployed]
        if unknown:
            raise ExperimentRefused(
                f"{', '.join(unknown)}: not deployed versions of {exp.process}"
                f" (deployed: {', '.join(sorted(deployed))})"
            )
        existing = await conn.fetchrow("SELECT * FROM experiments WHERE name = $1", exp.name)
        if existing is not None:
            raise ExperimentRefused(f"an experiment named {exp.name!r} already exists; names are never reused")
        running = await conn.fetchval(
            "SELECT name FROM experiments WHERE process = $1 AND stopped_at IS NULL", exp.process
        )
        if running is not None:
            raise ExperimentRefused(f"experiment {running!r} is already running on {exp.process}; stop it first")
        row = await conn.fetchrow(
            "INSERT INTO experiments (name, process, body, started_by) VALUES ($1, $2, $3::jsonb, $4) RETURNING *",
            exp.name,
            exp.process,
            json.dumps(exp.model_dump(mode="json")),
            started_by,
        )
    assert row is not None
    return _record(row)


async def stop(pool: asyncpg.Pool, name: str, *, stopped_by: str) -> ExperimentRecord:
    row = await pool.fetchrow(
        "UPDATE experiments SET stopped_by = $2, stopped_at = now() WHERE name = $1 AND stopped_at IS NULL RETURNING *",
        name,
        stopped_by,
    )
    if row is None:
        known = await pool.fetchrow("SELECT * FROM experiments WHERE name = $1", name)
        raise ExperimentRefused(f"experiment {name!r} " + ("has already stopped" if known else "does not exist"))
    return _record(row)


async def running_on(pool: asyncpg.Pool, process: str) -> Experiment | None:
    row = await pool.fetchrow("SELECT * FROM experiments WHERE process = $1 AND stopped_at IS NULL", process)
    return None if row is None else _record(row).experiment


async def get(pool: asyncpg.Pool, name: str) -> ExperimentRecord:
    row = await pool.fetchrow("SELECT * FROM experiments WHERE name = $1", name)
    if row is None:
        raise ExperimentRefused(f"experiment {name!r} does not exist")
    return _record(row)


async def list_all(pool: asyncpg.Pool) -> list[ExperimentRecord]:
    return [_record(r) for r in await pool.fetch("SELECT * FROM experiments ORDER BY started_at")]


async def deals_per_arm(pool: asyncpg.Pool, name: str) -> dict[str, int]:
    """How many deals the experiment has assigned to each version so far."""
    rows = await pool.fetch(
        "SELECT start_version, count(*) AS n FROM deals WHERE experiment = $1 GROUP BY start_version", name
    )
    return {r["start_version"]: r["n"] for r in rows}
