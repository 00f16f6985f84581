DROP INDEX IF EXISTS product_keys_key_id;
ALTER TABLE product_keys DROP COLUMN key_id;
