-- Process experiments (definitions/experiment.py) and the experiment each deal was assigned by.
CREATE TABLE experiments (
    name        text PRIMARY KEY,
    process     text        NOT NULL,
    body        jsonb       NOT NULL,
    started_by  text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    stopped_by  text,
    stopped_at  timestamptz
);
-- at most one running experiment per process: a new deal must have one answer
CREATE UNIQUE INDEX experiments_one_running ON experiments (process) WHERE stopped_at IS NULL;

ALTER TABLE deals ADD COLUMN experiment text;
UPDATE deals d SET experiment = e.payload->>'experiment'
FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DealStarted' AND e.payload ? 'experiment';
CREATE INDEX deals_experiment ON deals (experiment) WHERE experiment IS NOT NULL;
