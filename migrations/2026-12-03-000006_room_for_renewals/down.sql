ALTER TABLE entitlements SET (fillfactor = 80);
ALTER TABLE subscriptions SET (fillfactor = 80);
