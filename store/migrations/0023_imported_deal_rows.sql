-- Closed deals imported before the bulk load went through the read models' projections
-- (store/projections) got a deals row without the attributes they started with (customer, team,
-- experiment, the deal they follow on from) and without the board's marks. Filled here from
-- their logged events, as the projection computes them; the log itself is only read.
UPDATE deals d SET
    customer = coalesce(d.customer, e.payload->'fields'->>'customer'),
    team = coalesce(d.team, e.payload->>'team'),
    experiment = coalesce(d.experiment, e.payload->>'experiment'),
    follows = coalesce(d.follows, e.payload->>'follows'),
    follow_kind = coalesce(d.follow_kind, e.payload->>'follow_kind')
FROM deal_events e
WHERE e.deal_id = d.deal_id AND e.seq = 1 AND e.type = 'DealStarted'
  AND d.deal_id IN (SELECT deal_id FROM imported_deals WHERE kind = 'closed');

WITH imported AS (
    SELECT deal_id FROM imported_deals WHERE kind = 'closed'
), entered AS (
    SELECT e.deal_id, max(e.seq) AS seq FROM deal_events e JOIN imported USING (deal_id)
    WHERE e.type IN ('StageEntered', 'MigratedToVersion') GROUP BY e.deal_id
), since AS (
    SELECT e.deal_id,
           count(*) FILTER (WHERE e.type = 'SlaBreached') AS breaches,
           coalesce(max((e.payload->>'level')::int) FILTER (WHERE e.type = 'Escalated'), 0) AS rung
    FROM deal_events e JOIN imported USING (deal_id) LEFT JOIN entered n ON n.deal_id = e.deal_id
    WHERE e.type IN ('SlaBreached', 'Escalated') AND e.seq > coalesce(n.seq, 0)
    GROUP BY e.deal_id
)
UPDATE deals d SET stage_sla_breaches = s.breaches, stage_escalation = s.rung
FROM since s WHERE s.deal_id = d.deal_id;
