-- Product keys name the key-encryption key that encrypted them (KEY_ENCRYPTION_KEYS), so keys
-- can rotate: rows written before carry `default`, the id KEY_ENCRYPTION_KEY takes in the ring.
ALTER TABLE product_keys ADD COLUMN key_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE product_keys ALTER COLUMN key_id DROP DEFAULT;
CREATE INDEX product_keys_key_id ON product_keys (key_id);
