-- How each import run ended (client/import_service.py, store/imports.py): running, finished,
-- failed (with the error it stopped on) or killed (its process died without a word: the database
-- session it held for the run is gone). A run holds one session for as long as it runs;
-- backend_pid names it, so a run whose session has ended while still marked running was killed.
-- Runs recorded before this: finished if they say when, else killed.
ALTER TABLE imports
    ADD COLUMN status text NOT NULL DEFAULT 'running',
    ADD COLUMN error text,
    ADD COLUMN backend_pid integer;
UPDATE imports SET status = CASE WHEN finished_at IS NULL THEN 'killed' ELSE 'finished' END;
