DROP TABLE refunds;

DELETE FROM scheduled_actions WHERE kind = 'END_AT_ANNIVERSARY';
ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_kind_check;
ALTER TABLE scheduled_actions ADD CONSTRAINT scheduled_actions_kind_check CHECK (kind IN
    ('RENEWAL_CHARGE', 'REMINDER', 'ENTER_RENEWAL_WINDOW', 'LAPSE', 'ORDER_EXPIRY', 'SETTLE_ORDER', 'REFUND',
     'COMPLETE_ACTIVATION', 'GRANT_AZURE_CREDIT'));

ALTER TABLE subscriptions
    DROP COLUMN benefit_use,
    DROP COLUMN ends_at_anniversary;

DROP INDEX service_requests_one_open_cancellation;
ALTER TABLE service_requests
    DROP CONSTRAINT service_requests_cancellation_is_billing,
    DROP COLUMN decision,
    DROP COLUMN refund_eligibility_shown,
    DROP COLUMN intent;
