-- Outgoing messages (follow-up touches and reminder notifications), each sent at most once.
CREATE TABLE outbox (
    deal_id      text        NOT NULL,
    effect_key   text        NOT NULL,  -- touch/<cadence_run>/<touch_no> or notify/<event seq>
    kind         text        NOT NULL,
    channel      text        NOT NULL,
    recipient    text        NOT NULL,
    subject      text        NOT NULL,
    body         text        NOT NULL,
    cadence_run  text,
    touch_no     integer,
    status       text        NOT NULL DEFAULT 'pending',  -- pending, retrying, sent, failed
    message_id   text,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    PRIMARY KEY (deal_id, effect_key)
);
CREATE UNIQUE INDEX outbox_touch ON outbox (deal_id, cadence_run, touch_no) WHERE kind = 'touch';
CREATE INDEX outbox_status ON outbox (status) WHERE status <> 'sent';
