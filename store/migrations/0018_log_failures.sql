-- Appends to the event log that keep failing: one row per deal whose log lags behind Temporal's
-- history because its append activity fails (Temporal retries it). Not part of the log: a row
-- is replaced at each failed attempt and removed once the append goes through. What the deal's
-- status, `audit verify`, /readyz and the dealflow_log_appends_failing gauge report.
CREATE TABLE log_append_failures (
    deal_id    text PRIMARY KEY,
    first_seq  integer NOT NULL,
    last_seq   integer NOT NULL,
    error      text NOT NULL,
    attempts   integer NOT NULL,
    since      timestamptz NOT NULL DEFAULT now(),
    last_at    timestamptz NOT NULL DEFAULT now()
);
