ALTER TABLE service_requests DROP CONSTRAINT service_requests_benefit_fk;
DELETE FROM scheduled_actions WHERE kind IN ('COMPLETE_ACTIVATION', 'GRANT_AZURE_CREDIT');
ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_kind_check;
ALTER TABLE scheduled_actions ADD CONSTRAINT scheduled_actions_kind_check CHECK (kind IN
    ('RENEWAL_CHARGE', 'REMINDER', 'ENTER_RENEWAL_WINDOW', 'LAPSE', 'ORDER_EXPIRY', 'SETTLE_ORDER', 'REFUND'));
DROP TABLE marketing_contacts;
DROP TABLE azure_credit_grants;
DROP TABLE benefit_assignments;
DROP TABLE product_keys;
DROP TABLE entitlements;
