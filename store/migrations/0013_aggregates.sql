-- Metric aggregates (see store/aggregates.py): each deal's contribution to every figure, summed
-- per group of deals the metrics filter on, in total and by start day and day of the instant.
-- Kept by the event-log append; filled from the log by `store.aggregates.rebuild` right after
-- this migration.
CREATE TABLE metric_groups (
    gid           serial PRIMARY KEY,
    process       text NOT NULL,
    layout        text,  -- the stage layout the figures were computed with; NULL: no definition deployed
    start_version text,
    version       text,  -- NULL: a rollup, whose totals sum every group of the process with the layout
    start_owner   text,
    experiment    text,
    rollup        integer,  -- the group's rollup
    UNIQUE NULLS NOT DISTINCT (process, layout, start_version, version, start_owner, experiment)
);

-- what the aggregates hold of each deal: its group, and what the next append goes on from
CREATE TABLE deal_metric_state (
    deal_id    text PRIMARY KEY,
    gid        integer NOT NULL,
    started_at timestamptz,
    value      double precision,
    touches    integer NOT NULL,
    cadence    boolean NOT NULL,
    last_at    timestamptz
);
CREATE INDEX deal_metric_state_group ON deal_metric_state (gid, started_at);

-- Rows are signed steps that add up. n counts deals (visits, events); for the histogram kinds,
-- how many had the value x (microseconds); s adds up values: the pipeline's deal values, and in
-- a histogram's coarse rows (totals only) the values of the bin x.
CREATE TABLE metric_totals (
    gid    integer          NOT NULL,
    kind   smallint         NOT NULL,
    stage  text COLLATE "C" NOT NULL,
    detail text COLLATE "C" NOT NULL,
    x      double precision NOT NULL,
    n      bigint           NOT NULL,
    s      double precision NOT NULL,
    PRIMARY KEY (gid, kind, stage, detail, x)
);

-- sb: the UTC day (since 1970-01-01) the deal started; eb: the UTC day the change happened
CREATE TABLE metric_buckets (
    gid    integer          NOT NULL,
    sb     integer          NOT NULL,
    eb     integer          NOT NULL,
    kind   smallint         NOT NULL,
    stage  text COLLATE "C" NOT NULL,
    detail text COLLATE "C" NOT NULL,
    x      double precision NOT NULL,
    n      bigint           NOT NULL,
    s      double precision NOT NULL,
    PRIMARY KEY (gid, sb, eb, kind, stage, detail, x)
);
