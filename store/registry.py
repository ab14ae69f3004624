"""The definition registry: every deployed version of every process, immutable once deployed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

import asyncpg

from definitions.loader import PinnedDefinition
from definitions.model import ProcessDefinition


class UnknownDefinition(LookupError):
    """No deployed definition matches the name (and version) asked for."""


@dataclass(frozen=True)
class Deployment:
    name: str
    version: str
    content_hash: str
    stages: int
    deployed_by: str
    deployed_at: datetime
    source: str | None
    created: bool  # False when this exact content was already deployed


def _file_name(source: str | None) -> str | None:
    """The name of the file a version was deployed from. Versions deployed before only names
    were kept hold the path the deploying machine gave, a server path no page may show."""
    return PurePath(source).name if source else source


async def deploy(
    pool: asyncpg.Pool, pinned: PinnedDefinition, *, deployed_by: str, source: str | None = None
) -> Deployment:
    """Store a version; deploying the same content again changes nothing and says so."""
    body = json.dumps(pinned.definition.model_dump(mode="json"), sort_keys=True)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO definitions (name, version, content_hash, body, templates, source, deployed_by)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)"
            " ON CONFLICT (name, version) DO NOTHING RETURNING deployed_by, deployed_at",
            pinned.name,
            pinned.version,
            pinned.content_hash,
            body,
            json.dumps(pinned.templates, sort_keys=True),
            _file_name(source),
            deployed_by,
        )
        created = row is not None
        if row is None:
            row = await conn.fetchrow(
                "SELECT deployed_by, deployed_at FROM definitions WHERE name = $1 AND version = $2",
                pinned.name,
                pinned.version,
            )
    assert row is not None
    return Deployment(
        pinned.name,
        pinned.version,
        pinned.content_hash,
        len(pinned.definition.stages),
        row["deployed_by"],
        row["deployed_at"],
        _file_name(source),
        created,
    )


async def get(pool: asyncpg.Pool, name: str, version: str | None = None) -> PinnedDefinition:
    """A deployed version, or the latest deployed one when `version` is None."""
    row = await pool.fetchrow(
        "SELECT version, content_hash, body, templates FROM definitions"
        " WHERE name = $1 AND ($2::text IS NULL OR version = $2 OR content_hash = $2)"
        " ORDER BY deployed_at DESC LIMIT 1",
        name,
        version,
    )
    if row is None:
        known = [r["name"] for r in await pool.fetch("SELECT DISTINCT name FROM definitions ORDER BY name")]
        if name in known:
            raise UnknownDefinition(f"process {name!r} has no deployed version {version!r}")
        raise UnknownDefinition(
            f"no process {name!r} is deployed (deployed: {', '.join(known) or 'none'}); "
            "run 'dealflow definitions deploy FILE'"
        )
    return PinnedDefinition(
        definition=ProcessDefinition.model_validate_json(row["body"]),
        version=row["version"],
        content_hash=row["content_hash"],
        templates=json.loads(row["templates"]),
    )


async def latest_version(pool: asyncpg.Pool, name: str) -> str:
    """The version `get(pool, name)` would return, without reading its body."""
    found = await pool.fetchval(
        "SELECT version FROM definitions WHERE name = $1 ORDER BY deployed_at DESC LIMIT 1", name
    )
    if found is None:
        await get(pool, name)  # raises UnknownDefinition, naming what is deployed
    return str(found)


def _listed(r: asyncpg.Record) -> Deployment:
    """A stored version as the listings show it (not just deployed)."""
    return Deployment(
        r["name"],
        r["version"],
        r["content_hash"],
        r["stages"],
        r["deployed_by"],
        r["deployed_at"],
        _file_name(r["source"]),
        False,
    )


async def list_all(pool: asyncpg.Pool) -> list[Deployment]:
    rows = await pool.fetch(
        "SELECT name, version, content_hash, jsonb_array_length(body->'stages') AS stages,"
        " deployed_by, deployed_at, source FROM definitions ORDER BY name, deployed_at"
    )
    return [_listed(r) for r in rows]


async def find(pool: asyncpg.Pool, name: str, version: str) -> Deployment | None:
    """The deployment of exactly this version, if there is one."""
    r = await pool.fetchrow(
        "SELECT name, version, content_hash, jsonb_array_length(body->'stages') AS stages,"
        " deployed_by, deployed_at, source FROM definitions WHERE name = $1 AND version = $2",
        name,
        version,
    )
    if r is None:
        return None
    return _listed(r)
