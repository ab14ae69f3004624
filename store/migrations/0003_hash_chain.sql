-- Tamper evidence: each event row carries the SHA-256 of its predecessor's hash and its own payload.
ALTER TABLE deal_events ADD COLUMN prev_hash text;
ALTER TABLE deal_events ADD COLUMN hash text;
