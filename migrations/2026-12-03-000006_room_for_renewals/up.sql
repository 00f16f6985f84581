-- Room for a whole renewal on each page of entitlements and subscriptions
-- (docs/BENCHMARKS.md, item 27).
--
-- A renewal updates every entitlement of the subscription (balances, term, expiry) and the
-- subscription itself, and rows written together sit together on a page. With fillfactor 80 a
-- page had room for about a quarter of its rows' new versions, so most updates went to another
-- page and added an entry to each of the table's indexes (3 on each table). Half a page free
-- holds a new version of every row on it: the update stays on the page (HOT) and touches no
-- index. Applies to pages written from now on.
ALTER TABLE entitlements SET (fillfactor = 50);
ALTER TABLE subscriptions SET (fillfactor = 50);
