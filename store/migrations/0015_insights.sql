-- What the insights (store/rep_strength.py, store/fact_outcomes.py, store/persistence.py) read
-- from the log besides the projections: a few event types, one deal at a time, in sequence
-- order, without touching the rest of the table.

-- who owned a deal when: hand-offs, and the escalations that reassign it
CREATE INDEX deal_events_owner_changes ON deal_events (process, deal_id, seq) INCLUDE (occurred_at)
WHERE type = 'HandedOff' OR (type = 'Escalated' AND payload->>'reassigned_to' IS NOT NULL);

-- the facts a stage recorded, one stage at a time
CREATE INDEX deal_events_completions ON deal_events (process, stage, deal_id, seq) INCLUDE (occurred_at)
WHERE type = 'StageCompleted';

-- follow-up persistence: cadences, touches, the buyer's answers and the outcomes
CREATE INDEX deal_events_follow_up ON deal_events (process, deal_id, seq) INCLUDE (type, occurred_at)
WHERE type IN ('CadenceStarted', 'TouchSent', 'BuyerResponded', 'DealWon', 'DealLost');
