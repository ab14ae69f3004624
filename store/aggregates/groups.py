"""The groups of deals the aggregates keep apart, and the layouts of the versions they count.

A group is found or added in the database (concurrent appends may add the same one); a
version's layout is parsed once per content.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from definitions.model import ProcessDefinition
from store.aggregates.figures import Layout
from store.visits import Conn


@dataclass(frozen=True)
class Group:
    """The deal attributes the metrics filter on, besides the start day: one row set per group."""

    process: str
    layout: str | None  # Layout.text; None when the version's definition is not deployed
    start_version: str | None
    version: str | None  # None only in a rollup
    start_owner: str | None
    experiment: str | None

    def rollup(self) -> Group | None:
        """The group whose totals sum every deal of the process with this layout (unfiltered metrics)."""
        if self.layout is None or self.version is None:  # no figures kept, or a rollup itself
            return None
        return Group(self.process, self.layout, None, None, None, None)


@dataclass
class Held:
    """What the aggregates already hold of a deal (table `deal_metric_state`)."""

    gid: int
    rollup: int | None
    group: Group
    started_at: datetime | None
    value: float | None
    touches: int
    cadence: bool
    last_at: datetime | None


_PARSED: dict[str, Layout] = {}


def parsed(text: str | None) -> Layout | None:
    if text is None:
        return None
    if text not in _PARSED:
        _PARSED[text] = Layout.parse(text)
    return _PARSED[text]


_LAYOUTS: dict[tuple[str, str, str], Layout] = {}


async def layouts_of(conn: Conn, versions: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Layout | None]:
    """The layouts of process versions (None: not deployed), in one query (two when a content is
    new to this process: its body is parsed once)."""
    wanted = sorted(set(versions))
    found = {
        (r["name"], r["version"]): r["content_hash"]
        for r in await conn.fetch(
            "SELECT d.name, d.version, d.content_hash FROM definitions d"
            " JOIN unnest($1::text[], $2::text[]) AS w(name, version) USING (name, version)",
            [p for p, _ in wanted],
            [v for _, v in wanted],
        )
    }
    unread = [(p, v) for (p, v), content in found.items() if (p, v, content) not in _LAYOUTS]
    if unread:
        for r in await conn.fetch(
            "SELECT d.name, d.version, d.content_hash, d.body FROM definitions d"
            " JOIN unnest($1::text[], $2::text[]) AS w(name, version) USING (name, version)",
            [p for p, _ in unread],
            [v for _, v in unread],
        ):
            _LAYOUTS[(r["name"], r["version"], r["content_hash"])] = Layout.of(
                ProcessDefinition.model_validate_json(r["body"])
            )
    out: dict[tuple[str, str], Layout | None] = {}
    for p, v in wanted:
        content = found.get((p, v))
        out[(p, v)] = None if content is None else _LAYOUTS[(p, v, content)]
    return out


async def layout_of(conn: Conn, process: str, version: str) -> Layout | None:
    """The layout of a deployed version (None: not deployed)."""
    return (await layouts_of(conn, [(process, version)]))[(process, version)]


GROUP_COLUMNS = ("process", "layout", "start_version", "version", "start_owner", "experiment")
_FIND_GROUP = "SELECT gid FROM metric_groups WHERE " + " AND ".join(
    f"{c} IS NOT DISTINCT FROM ${i + 1}" for i, c in enumerate(GROUP_COLUMNS)
)
_FIND_GROUPS = (
    f"SELECT w.i, g.gid FROM unnest({', '.join(f'${i + 1}::text[]' for i in range(len(GROUP_COLUMNS)))})"
    f" WITH ORDINALITY AS w({', '.join(GROUP_COLUMNS)}, i)"
    " JOIN metric_groups g ON " + " AND ".join(f"g.{c} IS NOT DISTINCT FROM w.{c}" for c in GROUP_COLUMNS)
)
_ADD_GROUP = (
    f"INSERT INTO metric_groups ({', '.join(GROUP_COLUMNS)}, rollup) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT DO NOTHING RETURNING gid"
)


async def group_id(conn: Conn, g: Group, rollup: int | None) -> int:
    """The group's id, adding it (with its rollup's id) when new."""
    dims = [getattr(g, c) for c in GROUP_COLUMNS]
    for _ in range(3):
        found = await conn.fetchval(_FIND_GROUP, *dims)
        if found is None:  # a new group; a concurrent append may be adding it too: then read it again
            found = await conn.fetchval(_ADD_GROUP, *dims, rollup)
        if found is not None:
            return int(found)
    raise RuntimeError(f"metric group {g} could neither be found nor added")


async def group_ids(conn: Conn, groups: Iterable[Group]) -> dict[Group, tuple[int, int | None]]:
    """Each group's id and its rollup's: the known ones in one query, the new ones added (rollups
    first)."""
    wanted = set(groups)
    if not wanted:
        return {}
    everyone = sorted(wanted | {r for g in wanted if (r := g.rollup()) is not None}, key=_order)
    rows = await conn.fetch(_FIND_GROUPS, *([getattr(g, c) for g in everyone] for c in GROUP_COLUMNS))
    ids = {everyone[r["i"] - 1]: int(r["gid"]) for r in rows}
    for g in everyone:  # rollups sort first: a group added below finds its rollup's id here
        if g not in ids:
            r = g.rollup()
            ids[g] = await group_id(conn, g, None if r is None else ids[r])
    out: dict[Group, tuple[int, int | None]] = {}
    for g in wanted:
        r = g.rollup()
        out[g] = (ids[g], None if r is None else ids[r])
    return out


def _order(g: Group) -> tuple[bool, tuple[str, ...]]:
    return (g.version is not None, tuple(str(getattr(g, c)) for c in GROUP_COLUMNS))
