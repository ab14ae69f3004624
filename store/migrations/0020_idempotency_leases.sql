-- A reserved Idempotency-Key is held by one request at a time, on a lease its server renews while
-- the request runs. A server that dies mid-request (or loses the database around its answer)
-- stops renewing, and a repeat of the request takes the key over once the lease has run out,
-- instead of being told "in progress" forever. Reservations made before leases have none: they
-- can be taken over at once.
ALTER TABLE api_requests ADD COLUMN holder text, ADD COLUMN lease_until timestamptz;
