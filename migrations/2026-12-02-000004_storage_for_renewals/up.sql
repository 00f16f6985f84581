-- Storage for the renewal storm (docs/BENCHMARKS.md).
--
-- Due work is looked up by subject (cancel a subscription's pending work, list it), and its
-- unique key says "once per (kind, subject, term, tag)". With the subject first, the unique
-- index serves both, and the separate subject index goes: one index less to maintain for each
-- row of due work.
ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_kind_subject_id_term_tag_key;
ALTER TABLE scheduled_actions
    ADD CONSTRAINT scheduled_actions_subject_kind_term_tag_key UNIQUE (subject_id, kind, term, tag);
DROP INDEX scheduled_actions_subject_idx;

-- Rows updated in place on every renewal (a subscription's term, its entitlements' balances
-- and expiry) and when due work is done: room on each page lets Postgres keep the new version
-- on the same page without touching the indexes (HOT updates). Applies to pages written from
-- now on.
ALTER TABLE subscriptions SET (fillfactor = 80);
ALTER TABLE entitlements SET (fillfactor = 80);
ALTER TABLE scheduled_actions SET (fillfactor = 85);
