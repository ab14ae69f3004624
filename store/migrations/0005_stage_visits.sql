-- The stage-visit projection (see store/visits.py), filled from the log by `store.visits.rebuild`
-- right after this migration, and the deal's starting owner and version, which metrics filter on.
CREATE TABLE stage_visits (
    deal_id       text        NOT NULL,
    seq           integer     NOT NULL,
    process       text        NOT NULL,
    stage         text        NOT NULL,
    via           text        NOT NULL,
    entered_at    timestamptz NOT NULL,
    visit_no      integer     NOT NULL,
    completed_at  timestamptz,
    exit_type     text,
    exit_at       timestamptz,
    exit_seq      integer,
    lost_reason   text,
    skipped       text[],
    first_completion boolean NOT NULL DEFAULT false,
    first_back    boolean NOT NULL DEFAULT false,
    first_next    boolean NOT NULL DEFAULT false,
    cum_before    double precision NOT NULL DEFAULT 0,
    next_entry_at timestamptz,
    PRIMARY KEY (deal_id, seq)
);
CREATE INDEX stage_visits_process ON stage_visits (process, deal_id, seq);

ALTER TABLE deals ADD COLUMN start_owner text;
ALTER TABLE deals ADD COLUMN start_version text;
UPDATE deals d SET start_owner = e.payload->>'owner', start_version = e.version
FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DealStarted';
CREATE INDEX deals_process_started ON deals (process, started_at);

-- the few event types the metrics still read from the log, without touching the rest
CREATE INDEX deal_events_metric_notices ON deal_events (process, type, deal_id) INCLUDE (stage, occurred_at)
WHERE type IN ('TouchSent', 'CadenceStarted', 'SlaBreached', 'ReminderSent', 'Escalated');
