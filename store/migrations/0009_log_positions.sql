-- Where in the deal's Temporal history each logged event was made (the run's start, the history
-- length), so an append made later in history can replace events of a discarded workflow task.
ALTER TABLE deal_events ADD COLUMN run_started_at timestamptz;
ALTER TABLE deal_events ADD COLUMN history_length integer;
