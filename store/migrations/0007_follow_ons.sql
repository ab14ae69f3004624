-- Rebuy follow-on deals: the deal a deal follows on from, and the customer, so the projection can
-- follow a customer across deals.
ALTER TABLE deals ADD COLUMN follows text;
ALTER TABLE deals ADD COLUMN follow_kind text;
ALTER TABLE deals ADD COLUMN customer text;
UPDATE deals d SET follows = e.payload->>'follows', follow_kind = e.payload->>'follow_kind',
                   customer = e.payload->'fields'->>'customer'
FROM deal_events e WHERE e.deal_id = d.deal_id AND e.type = 'DealStarted';
CREATE INDEX deals_follows ON deals (follows) WHERE follows IS NOT NULL;
CREATE INDEX deals_customer ON deals (customer) WHERE customer IS NOT NULL;
