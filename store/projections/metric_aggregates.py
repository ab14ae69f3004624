"""The metric-aggregate read model: each deal's figures added into its group's rows (see
`store.aggregates`), and what the deal's next events go on from (`deal_metric_state`).

A fresh deal adds its whole contribution; a deal already held adds the step its new events make,
or, when they rewrite what it held (a migration, a layout newly known, an event out of time
order), takes its contribution back and adds it anew. The rows of every deal in the call are
summed by key and written in one statement, last in the transaction: they are shared by many
deals, and locked from then to the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from domain.events import DealStarted, EventBase, MigratedToVersion, decode_stored
from store.aggregates.figures import RELEVANT, DealFacts, Layout, contributions, notices, step
from store.aggregates.groups import Group, group_ids, layouts_of, parsed
from store.aggregates.stored import Rows
from store.projections.base import Change
from store.visits import Conn

_WRITE = """
WITH totals AS (
    INSERT INTO metric_totals AS m (gid, kind, stage, detail, x, n, s)
    SELECT * FROM unnest($1::int[], $2::smallint[], $3::text[], $4::text[], $5::float8[], $6::bigint[], $7::float8[])
    ON CONFLICT (gid, kind, stage, detail, x) DO UPDATE SET n = m.n + EXCLUDED.n, s = m.s + EXCLUDED.s
), steps AS (
    INSERT INTO metric_buckets AS m (gid, sb, eb, kind, stage, detail, x, n, s)
    SELECT * FROM unnest($8::int[], $9::int[], $10::int[], $11::smallint[], $12::text[], $13::text[], $14::float8[],
                         $15::bigint[], $16::float8[])
    ON CONFLICT (gid, sb, eb, kind, stage, detail, x) DO UPDATE SET n = m.n + EXCLUDED.n, s = m.s + EXCLUDED.s
)
INSERT INTO deal_metric_state (deal_id, gid, started_at, value, touches, cadence, last_at)
SELECT * FROM unnest($17::text[], $18::int[], $19::timestamptz[], $20::float8[], $21::int[], $22::bool[],
                     $23::timestamptz[])
ON CONFLICT (deal_id) DO UPDATE SET gid = EXCLUDED.gid, started_at = EXCLUDED.started_at, value = EXCLUDED.value,
    touches = EXCLUDED.touches, cadence = EXCLUDED.cadence, last_at = EXCLUDED.last_at
"""


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    return [[r[i] for r in rows] for i in range(width)]


class MetricAggregates:
    """The figures change with the events `store.aggregates.figures` reads."""

    reads: tuple[type[EventBase], ...] = RELEVANT

    async def apply(self, conn: Conn, changes: Sequence[Change]) -> None:
        groups = await self._groups(conn, changes)
        ids = await group_ids(conn, {g for c in changes if (g := groups[c.batch.deal_id]) != _held_group(c)})
        rows = Rows()
        states: list[tuple[object, ...]] = []
        for c in changes:
            group = groups[c.batch.deal_id]
            if c.held is not None and c.held.group == group:
                gid, rollup = c.held.gid, c.held.rollup  # a version's definition never changes
            else:
                gid, rollup = ids[group]
            after = await self._add(conn, rows, c, gid, rollup, parsed(group.layout))
            held = c.held
            instants = after.instants() | ({held.last_at} if held is not None and held.last_at is not None else set())
            touches = after.touches + sum(what == "TouchSent" for what, _, _ in after.notices)
            cadence = after.cadence or any(what == "CadenceStarted" for what, _, _ in after.notices)
            states.append(
                (c.batch.deal_id, gid, after.started_at, after.value, touches, cadence, max(instants, default=None))
            )
        await conn.execute(
            _WRITE, *_columns(rows.total_records(), 7), *_columns(rows.step_records(), 9), *_columns(states, 7)
        )

    async def _groups(self, conn: Conn, changes: Sequence[Change]) -> dict[str, Group]:
        """The group of each deal as of its new events (the layouts looked up in one query)."""
        out: dict[str, Group] = {}
        unknown = []
        for c in changes:
            held, b = c.held, c.batch
            same = held is not None and (held.group.process, held.group.version) == (b.process, b.version)
            if held is not None and same and held.group.layout:
                out[b.deal_id] = held.group  # a version's definition never changes
                continue
            unknown.append(c)
        layouts = await layouts_of(conn, ((c.batch.process, c.batch.version) for c in unknown)) if unknown else {}
        for c in unknown:
            b, held = c.batch, c.held
            layout = layouts[(b.process, b.version)]
            started = next((e for e in b.new if isinstance(e, DealStarted)), None)
            out[b.deal_id] = Group(
                process=b.process,
                layout=None if layout is None else layout.text,
                start_version=started.version if started else held.group.start_version if held else None,
                version=b.version,
                start_owner=started.owner if started else held.group.start_owner if held else None,
                experiment=started.experiment if started else held.group.experiment if held else None,
            )
        return out

    async def _add(
        self, conn: Conn, rows: Rows, c: Change, gid: int, rollup: int | None, layout: Layout | None
    ) -> DealFacts:
        """Add what the deal's new events change to `rows`; return the facts the deal stands on."""
        b, held = c.batch, c.held
        if b.fresh and held is None:
            facts = DealFacts.of(b.new)
            rows.add(gid, rollup, contributions(facts, layout))
            return facts
        relevant = [e for e in b.new if isinstance(e, RELEVANT)]
        started = next((e for e in relevant if isinstance(e, DealStarted)), None)
        migrated = any(isinstance(e, MigratedToVersion) for e in b.new)
        if held is None:
            in_step = started is not None and started.seq == 1  # nothing was added for the deal yet
        else:
            in_step = held.gid == gid and (held.last_at is None or min(e.at for e in relevant) >= held.last_at)
        if in_step and not migrated:
            before = DealFacts(
                held.started_at if held else None,
                held.value if held else None,
                c.visits_before or [],
                touches=held.touches if held else 0,
                cadence=held.cadence if held else False,
            )
            after = replace(
                before,
                started_at=started.at if started else before.started_at,
                value=started.value if started else before.value,
                visits=c.visits_after if c.visits_before is not None else [],
                notices=notices(relevant),
            )
            rows.add(gid, rollup, step(before, after, layout, (e.at for e in relevant)))
            return after
        # a migration rewrote the deal's stages, its version's layout became known, or events came
        # out of time order: take back what the deal added, from its logged events, and add it anew
        logged = [
            decode_stored(r["payload"])
            for r in await conn.fetch("SELECT payload FROM deal_events WHERE deal_id = $1 ORDER BY seq", b.deal_id)
        ]
        if held is not None:
            seqs = {e.seq for e in b.new}
            earlier = DealFacts.of([e for e in logged if e.seq not in seqs])
            rows.add(held.gid, held.rollup, contributions(earlier, parsed(held.group.layout)), -1)
        after = DealFacts.of(logged)
        rows.add(gid, rollup, contributions(after, layout))
        return after


def _held_group(c: Change) -> Group | None:
    return None if c.held is None else c.held.group


PROJECTION = MetricAggregates()
