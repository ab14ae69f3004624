-- What an import wrote for each closed deal: how many events and the hash of the last, so that
-- `audit verify` checks the log of a deal no workflow ever ran against the record the import
-- made when it wrote it (a rewrite that recomputes the whole chain still differs from this).
-- NULL for open deals (Temporal's history is their record) and for imports made before this.
ALTER TABLE imported_deals ADD COLUMN events integer, ADD COLUMN head_hash text;
