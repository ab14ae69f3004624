-- A deal's customer is a field of up to 2,000 characters (domain/limits.py), more than a b-tree
-- entry can hold (about 2.7 kB). A hash index holds a value of any length and answers the
-- equality lookups made on the column.
DROP INDEX deals_customer;
CREATE INDEX deals_customer ON deals USING hash (customer) WHERE customer IS NOT NULL;
