-- The metrics count PENDING and DEAD emails (small sets) through partial indexes, never
-- scanning the table of every email ever sent.
CREATE INDEX emails_dead_idx ON emails (id) WHERE status = 'DEAD';
