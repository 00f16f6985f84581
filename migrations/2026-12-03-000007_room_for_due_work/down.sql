ALTER TABLE scheduled_actions SET (fillfactor = 85);
