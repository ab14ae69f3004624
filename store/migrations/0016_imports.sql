-- CRM imports (client/import_service.py): each run, who made it and from which files, and each
-- deal it brought over, keyed by source and CRM id so that running the same import again adds
-- nothing and an import stopped half-way resumes where it stopped.
CREATE TABLE imports (
    import_id   text PRIMARY KEY,
    source      text NOT NULL,
    process     text NOT NULL,
    version     text NOT NULL,
    files       jsonb NOT NULL,
    started_by  text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE imported_deals (
    source     text NOT NULL,
    crm_id     text NOT NULL,
    deal_id    text NOT NULL,
    import_id  text NOT NULL REFERENCES imports (import_id),
    kind       text NOT NULL,  -- open (a workflow runs it) or closed (history only)
    file       text NOT NULL,
    sha256     text NOT NULL,
    row_number integer NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, crm_id)
);
CREATE INDEX imported_deals_deal ON imported_deals (deal_id);
