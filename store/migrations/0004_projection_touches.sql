-- Follow-up touches on the current-state projection, so listings can filter and sort by them.
ALTER TABLE deals ADD COLUMN touches integer NOT NULL DEFAULT 0;
