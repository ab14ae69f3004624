-- What the pipeline board shows on each card beyond the current state: the owner's team (a
-- filter), and the SLA breaches and the highest escalation rung since the deal entered its
-- current stage (the card's badge). Kept by the append (store/event_log.py), filled here for the
-- deals already logged.
ALTER TABLE deals ADD COLUMN team text;
ALTER TABLE deals ADD COLUMN stage_sla_breaches integer NOT NULL DEFAULT 0;
ALTER TABLE deals ADD COLUMN stage_escalation integer NOT NULL DEFAULT 0;

UPDATE deals d SET team = e.payload->>'team'
FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DealStarted' AND e.payload->>'team' IS NOT NULL;

WITH entered AS (
    SELECT deal_id, max(seq) AS seq FROM deal_events
    WHERE type IN ('StageEntered', 'MigratedToVersion') GROUP BY deal_id
), since AS (
    SELECT e.deal_id,
           count(*) FILTER (WHERE e.type = 'SlaBreached') AS breaches,
           coalesce(max((e.payload->>'level')::int) FILTER (WHERE e.type = 'Escalated'), 0) AS rung
    FROM deal_events e JOIN entered n ON n.deal_id = e.deal_id AND e.seq > n.seq
    WHERE e.type IN ('SlaBreached', 'Escalated')
    GROUP BY e.deal_id
)
UPDATE deals d SET stage_sla_breaches = s.breaches, stage_escalation = s.rung
FROM since s WHERE s.deal_id = d.deal_id;

CREATE INDEX deals_board ON deals (process, status, stage);
