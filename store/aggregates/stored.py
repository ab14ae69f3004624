"""The rows a deal's figures become in the aggregate tables: keys, coarse bins, signed sums.

Pure: what `store.projections.metric_aggregates` and the back-fill write, summed by key here so
that each shared row is written once per statement.
"""

from __future__ import annotations

from collections import defaultdict

from store.aggregates.figures import HISTOGRAMS, Contribution, Key, Kind

COARSE = 100  # added to a histogram's kind: its coarse rows (totals only), x the bin, s the values' sum

StoredKey = tuple[int, str, str, float]  # kind, stage, detail, x: a row's key in its table and group


def bin_of(x: int) -> int:
    """A value's coarse bin, 16 to each doubling: bin 32 * e + m holds [m * 2**e, (m + 1) * 2**e)
    (below 32, the value itself; every negative value, -1). `store.metrics` finds the bin that
    holds a percentile's rank from these few rows, then the value among the bin's own rows."""
    if x < 0:
        return -1
    e = max(x.bit_length() - 5, 0)
    return 32 * e + (x >> e)


def stored(key: Key, n: int, *, coarse: bool) -> list[tuple[StoredKey, int, float]]:
    """The rows (key, n, s) that `n` of a figure's key go to."""
    kind, stage, detail, x = key
    if kind == Kind.PIPELINE:  # per stage: how many open deals, and their value added up
        return [((kind, stage, detail, 0.0), n, x * n)]
    rows = [((kind, stage, detail, x), n, 0.0)]
    if coarse and kind in HISTOGRAMS:
        rows.append(((kind + COARSE, stage, detail, float(bin_of(int(x)))), n, x * n))
    return rows


class Rows:
    """Signed rows for the aggregate tables, summed by key: [n, s] each."""

    def __init__(self) -> None:
        self.totals: defaultdict[tuple[int, StoredKey], list[float]] = defaultdict(lambda: [0, 0.0])
        self.steps: defaultdict[tuple[int, int, int, StoredKey], list[float]] = defaultdict(lambda: [0, 0.0])

    def add(self, gid: int, rollup: int | None, c: Contribution, sign: int = 1) -> None:
        """A deal's contribution to its group, and its histograms' coarse bins to the group's
        rollup (the values themselves are found among the groups' rows)."""
        for k, n in c.totals.items():
            for key, rn, rs in stored(k, sign * n, coarse=True):
                for g in (gid, rollup) if key[0] > COARSE else (gid,):
                    if g is not None:
                        row = self.totals[(g, key)]
                        row[0] += rn
                        row[1] += rs
        for (sb, eb), figures in c.steps.items():
            for k, n in figures.items():
                for key, rn, rs in stored(k, sign * n, coarse=False):
                    row = self.steps[(gid, sb, eb, key)]
                    row[0] += rn
                    row[1] += rs

    def total_records(self) -> list[tuple[object, ...]]:
        # in key order, so that concurrent appends lock shared rows in the same order (no deadlock)
        return sorted((g, *key, int(n), s) for (g, key), (n, s) in self.totals.items() if n or s)

    def step_records(self) -> list[tuple[object, ...]]:
        return sorted((g, sb, eb, *key, int(n), s) for (g, sb, eb, key), (n, s) in self.steps.items() if n or s)


TOTAL_COLUMNS = ("gid", "kind", "stage", "detail", "x", "n", "s")
BUCKET_COLUMNS = ("gid", "sb", "eb", "kind", "stage", "detail", "x", "n", "s")
STATE_COLUMNS = ("deal_id", "gid", "started_at", "value", "touches", "cadence", "last_at")
