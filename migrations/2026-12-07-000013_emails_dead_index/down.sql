DROP INDEX IF EXISTS emails_dead_idx;
