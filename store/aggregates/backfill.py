"""Every deal's aggregate rows from scratch, in bulk: the migration that adds the tables fills
them from the whole log with this (`rebuild`), and the tests check the projection against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg

from domain.events import DealEvent, DealStarted, decode_stored
from store.aggregates.figures import RELEVANT, DealFacts, Layout, contributions
from store.aggregates.groups import GROUP_COLUMNS, Group, group_id, layout_of
from store.aggregates.stored import BUCKET_COLUMNS, STATE_COLUMNS, TOTAL_COLUMNS, Rows
from store.visits import Conn


class Backfill:
    """Deals' rows from scratch, for deals the aggregates do not hold yet (the migration that adds
    the tables).

    Deals are added one at a time, by a pure function of their events. Their day steps and states
    go to temporary tables in chunks and are summed into the aggregates at the end, with the
    totals (few rows, summed here). A group not seen before gets a negative id here, and its real
    id when the rows are written (a live append may be adding the same group meanwhile).
    """

    CHUNK = 200_000

    def __init__(self, layouts: dict[tuple[str, str], Layout], groups: dict[Group, tuple[int, int | None]]):
        self.layouts = layouts
        self.groups = dict(groups)  # group: (gid, rollup's gid)
        self.states: list[tuple[object, ...]] = []
        self.rows = Rows()
        self.staged = False

    @classmethod
    async def start(cls, conn: Conn) -> Backfill:
        layouts = {}
        for r in await conn.fetch("SELECT name, version, content_hash FROM definitions"):
            layout = await layout_of(conn, r["name"], r["version"])
            if layout is not None:
                layouts[(r["name"], r["version"])] = layout
        groups = {
            Group(*(r[c] for c in GROUP_COLUMNS)): (r["gid"], r["rollup"])
            for r in await conn.fetch(f"SELECT gid, rollup, {', '.join(GROUP_COLUMNS)} FROM metric_groups")
        }
        return cls(layouts, groups)

    def _ids(self, g: Group) -> tuple[int, int | None]:
        if g not in self.groups:
            r = g.rollup()
            rollup = None if r is None else self._ids(r)[0]
            self.groups[g] = (-1 - sum(gid < 0 for gid, _ in self.groups.values()), rollup)
        return self.groups[g]

    def add(self, deal_id: str, process: str, version: str, events: Sequence[DealEvent]) -> None:
        """One deal's events, in order; `process` and `version` as its last append had them."""
        if not any(isinstance(e, RELEVANT) for e in events):
            return
        started = next((e for e in events if isinstance(e, DealStarted)), None)
        layout = self.layouts.get((process, version))
        gid, rollup = self._ids(
            Group(
                process=process,
                layout=None if layout is None else layout.text,
                start_version=started.version if started else None,
                version=version,
                start_owner=started.owner if started else None,
                experiment=started.experiment if started else None,
            )
        )
        facts = DealFacts.of(events)
        self.rows.add(gid, rollup, contributions(facts, layout))
        touches = sum(kind == "TouchSent" for kind, _, _ in facts.notices)
        cadence = any(kind == "CadenceStarted" for kind, _, _ in facts.notices)
        self.states.append((deal_id, gid, facts.started_at, facts.value, touches, cadence, max(facts.instants())))

    async def flush(self, conn: Conn, *, final: bool = False) -> None:
        """Move the day steps and deal states gathered so far to the database, when they are many
        (or `final`)."""
        if not final and len(self.rows.steps) + len(self.states) < self.CHUNK:
            return
        if not self.staged:
            await conn.execute(
                "CREATE TEMP TABLE metric_buckets_load (LIKE metric_buckets);"
                " CREATE TEMP TABLE metric_totals_load (LIKE metric_totals);"
                " CREATE TEMP TABLE deal_metric_state_load (LIKE deal_metric_state)"
            )
            self.staged = True
        await conn.copy_records_to_table(
            "metric_buckets_load", records=self.rows.step_records(), columns=BUCKET_COLUMNS
        )
        await conn.copy_records_to_table("deal_metric_state_load", records=self.states, columns=STATE_COLUMNS)
        self.rows.steps.clear()
        self.states = []

    async def finish(self, conn: Conn) -> None:
        """Add the new groups, then the totals, the staged steps and the deals' states."""
        real: dict[int, int] = {}
        for g, (gid, rollup) in sorted(self.groups.items(), key=lambda item: -item[1][0]):  # rollups first
            if gid < 0:
                real[gid] = await group_id(conn, g, real.get(rollup, rollup) if rollup is not None else None)
                self.groups[g] = (real[gid], real.get(rollup, rollup) if rollup is not None else None)
        await self.flush(conn, final=True)
        await conn.copy_records_to_table("metric_totals_load", records=self.rows.total_records(), columns=TOTAL_COLUMNS)
        mapping = [list(real), list(real.values())]
        for table, columns in (
            ("metric_totals", TOTAL_COLUMNS),
            ("metric_buckets", BUCKET_COLUMNS),
            ("deal_metric_state", STATE_COLUMNS),
        ):
            if table == "deal_metric_state":
                rest = ", ".join(columns[2:])
                values, conflict = f"l.deal_id, coalesce(m.real, l.gid), {rest} FROM {table}_load l", ""
            else:
                key = ", ".join(columns[1:-2])
                values = f"coalesce(m.real, l.gid), {key}, sum(n), sum(s) FROM {table}_load l"
                conflict = (
                    f" GROUP BY 1, {key} HAVING sum(n) <> 0 OR sum(s) <> 0"
                    f" ON CONFLICT (gid, {key}) DO UPDATE SET n = t.n + EXCLUDED.n, s = t.s + EXCLUDED.s"
                )
            await conn.execute(
                f"INSERT INTO {table} AS t ({', '.join(columns)}) SELECT {values}"
                " LEFT JOIN unnest($1::int[], $2::int[]) AS m(local, real) ON m.local = l.gid" + conflict,
                *mapping,
            )
            await conn.execute(f"DROP TABLE {table}_load")
        self.staged = False
        self.rows.totals.clear()


async def _add_logged(conn: Conn, fill: Backfill, rows: AsyncIterator[asyncpg.Record]) -> None:
    """Add the deals whose events `rows` holds (deal_id, process, version, payload; by deal, in order)."""
    deal: tuple[str, str, str] | None = None
    events: list[DealEvent] = []
    async for r in rows:
        if deal is None or r["deal_id"] != deal[0]:
            if deal is not None:
                fill.add(*deal, events)
                await fill.flush(conn)
            events = []
        deal = (r["deal_id"], r["process"], r["version"])  # the last row's: the deal's last append
        events.append(decode_stored(r["payload"]))
    if deal is not None:
        fill.add(*deal, events)
    await fill.finish(conn)


async def rebuild(conn: Conn) -> int:
    """Recompute the aggregates from the log (the migration that adds them); return the deals."""
    await conn.execute("TRUNCATE metric_totals, metric_buckets, deal_metric_state, metric_groups RESTART IDENTITY")
    rows = conn.cursor("SELECT deal_id, process, version, payload FROM deal_events ORDER BY deal_id, seq")
    await _add_logged(conn, await Backfill.start(conn), rows.__aiter__())
    return int(await conn.fetchval("SELECT count(*) FROM deal_metric_state"))
