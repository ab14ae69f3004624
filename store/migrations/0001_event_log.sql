-- The event log, the definition registry and the current-state projection.
CREATE TABLE deal_events (
    deal_id      text        NOT NULL,
    seq          integer     NOT NULL CHECK (seq >= 1),
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    actor        text        NOT NULL,
    stage        text,
    request_id   text,
    process      text        NOT NULL,
    version      text        NOT NULL,
    payload      jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deal_id, seq)
);
CREATE INDEX deal_events_process_type ON deal_events (process, version, type, stage);
CREATE INDEX deal_events_occurred_at ON deal_events (occurred_at);

CREATE TABLE definitions (
    name          text        NOT NULL,
    version       text        NOT NULL,
    content_hash  text        NOT NULL,
    body          jsonb       NOT NULL,
    templates     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source        text,
    deployed_by   text        NOT NULL,
    deployed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE INDEX definitions_latest ON definitions (name, deployed_at DESC);

CREATE TABLE deals (
    deal_id           text PRIMARY KEY,
    process           text        NOT NULL,
    version           text        NOT NULL,
    owner             text        NOT NULL,
    value             double precision,
    status            text        NOT NULL,
    stage             text,
    stage_entered_at  timestamptz,
    started_at        timestamptz,
    ended_at          timestamptz,
    last_seq          integer     NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deals_process_stage ON deals (process, stage);
CREATE INDEX deals_stage ON deals (stage);
CREATE INDEX deals_owner ON deals (owner);
