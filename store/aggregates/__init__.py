"""Metric aggregates: every deal's contribution to the figures, summed as the log is appended.

The metrics are sums over deals: counts of deals, counts of events, a sum of values (the
pipeline), and values whose medians are taken (durations in microseconds, kept as histograms:
value, how many). So each deal's figures, as they stood at any instant, can be added into small
tables once, in the transaction that appends its events, and a query adds rows instead of
re-reading the history.

`figures` computes a deal's figures as of an instant, as the SQL of `store.metrics` does over the
projections (both are checked against a plain Python computation in tests/store/test_metrics.py). It
is a pure function of the deal's visits (`store.visits`), its touches and notices, and the stage
layout of its process version (stage order and phases: what "later" and "in a phase" mean).
The figures change only at the deal's event instants, so they are stored as steps:

- `metric_groups`: the groups of deals the metrics tell apart (process, layout, starting version,
  current version, starting owner, experiment), and per process and layout a rollup of them.
- `metric_totals`: the figures of every deal as they stand now, per group and per rollup; the
  rollup also keeps each histogram in coarse bins (`bin_of`), so that the unfiltered metrics
  read a few bins and the values of one bin per percentile.
- `metric_buckets`: the same per group, split by the UTC day the deal started (`sb`) and the UTC
  day of the change (`eb`, signed: a visit's cumulative time counts from its exit until the
  stage is entered again). Summing the rows with `eb` before a day gives the figures as they
  stood at the start of that day; a start window sums whole start days.
- `deal_metric_state`: what the next append of the deal goes on from.

`store.metrics` computes the partial days at the edges of a window or of `--as-of` from the
projections, for the few deals concerned (see there). Deals whose process version has no
deployed definition, or a layout other than the definition asked about, are also computed from
the projections: their rows are grouped apart.

`contributions` (a deal's history at once: a fresh deal, the back-fill of the migration, a deal's
rows rewritten) and `step` (a new batch of a deal already held) are the two ways rows are made;
both go through `figures`.

The package is split by job: `figures` (pure: a deal's figures and their day steps), `stored`
(the rows those become in the tables), `groups` (the groups and layouts, looked up and added),
`backfill` (every deal from the log, for the migration that adds the tables). The projection
that keeps the tables as events are appended or loaded is `store.projections.metric_aggregates`.
"""

from __future__ import annotations

from store.aggregates.backfill import Backfill, rebuild
from store.aggregates.figures import (
    DAY,
    EPOCH,
    HISTOGRAMS,
    US,
    Contribution,
    DealFacts,
    Figures,
    Key,
    Kind,
    Layout,
    contributions,
    day,
    day_start,
    difference,
    figures,
    notices,
    step,
)
from store.aggregates.groups import Group, Held
from store.aggregates.stored import COARSE, Rows, bin_of, stored

__all__ = [
    "COARSE",
    "DAY",
    "EPOCH",
    "HISTOGRAMS",
    "US",
    "Backfill",
    "Contribution",
    "DealFacts",
    "Figures",
    "Group",
    "Held",
    "Key",
    "Kind",
    "Layout",
    "Rows",
    "bin_of",
    "contributions",
    "day",
    "day_start",
    "difference",
    "figures",
    "notices",
    "rebuild",
    "step",
    "stored",
]
