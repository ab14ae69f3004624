-- Handoffs between teams: the member chosen for each stage visit of a deal, so that a retried
-- choice returns the same member and the round-robin rotation moves once per visit.
CREATE TABLE handoff_choices (
    deal_id     text        NOT NULL,
    entry_seq   integer     NOT NULL,  -- the event that entered the stage (or migrated the deal)
    process     text        NOT NULL,
    team        text        NOT NULL,
    stage       text        NOT NULL,
    rule        text        NOT NULL,
    from_owner  text        NOT NULL,
    to_owner    text        NOT NULL,
    how         text        NOT NULL,
    turn        bigint      GENERATED ALWAYS AS IDENTITY,  -- the order choices were made in
    chosen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deal_id, entry_seq)
);
-- round-robin: each member's latest deal from the team
CREATE INDEX handoff_choices_turns ON handoff_choices (process, team, to_owner, turn);
-- fewest-open: the choices the deals projection may not show yet
CREATE INDEX handoff_choices_recent ON handoff_choices (process, chosen_at);
-- fewest-open: open deals per owner of a process
CREATE INDEX deals_open_owner ON deals (process, owner) WHERE status = 'open';
-- the handoff metrics: the HandedOff events of a process, without reading the rest of the log
CREATE INDEX deal_events_handoffs ON deal_events (process, deal_id, seq) WHERE type = 'HandedOff';
