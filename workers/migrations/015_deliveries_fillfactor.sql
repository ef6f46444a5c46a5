-- Room on each page of `deliveries` for the claim's update of a delivery (claimed_at, claimed_by:
-- no index covers them) to stay on the same page as a heap-only tuple, instead of a new row version
-- that every one of the table's indexes takes an entry for.
ALTER TABLE deliveries SET (fillfactor = 70);
