-- The money path's rules (issue 20, PRODUCT.md 2.5).
--
-- Cancellation is asked for explicitly: a BILLING request whose intent is CANCELLATION, with
-- the refund eligibility shown to the partner when it was made, decided by an operator with
-- an explicit decision. Any other request never cancels anything.
ALTER TABLE service_requests
    ADD COLUMN intent text NOT NULL DEFAULT 'GENERAL' CHECK (intent IN ('GENERAL', 'CANCELLATION')),
    ADD COLUMN refund_eligibility_shown jsonb,
    ADD COLUMN decision text CHECK (decision IN ('REFUND', 'END_AT_ANNIVERSARY', 'DECLINE')),
    ADD CONSTRAINT service_requests_cancellation_is_billing
        CHECK (intent = 'GENERAL' OR (kind = 'BILLING' AND subscription_id IS NOT NULL));
-- At most one open cancellation request per subscription.
CREATE UNIQUE INDEX service_requests_one_open_cancellation
    ON service_requests (subscription_id)
    WHERE intent = 'CANCELLATION' AND status <> 'CLOSED';

-- A subscription whose cancellation was decided without a refund ends at its anniversary
-- date: no renewal window, no window reminders. `benefit_use` is the reason code of the first
-- use of a benefit that ended refund eligibility (other than a key reveal, which has its own
-- column).
ALTER TABLE subscriptions
    ADD COLUMN ends_at_anniversary boolean NOT NULL DEFAULT false,
    ADD COLUMN benefit_use text CHECK (benefit_use IN
        ('TECHNICAL_BENEFIT_ACTIVATED', 'GTM_OFFER_ACTIVATED', 'VS_SEAT_ASSIGNED', 'AZURE_USER_ASSIGNED'));

ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_kind_check;
ALTER TABLE scheduled_actions ADD CONSTRAINT scheduled_actions_kind_check CHECK (kind IN
    ('RENEWAL_CHARGE', 'REMINDER', 'ENTER_RENEWAL_WINDOW', 'LAPSE', 'ORDER_EXPIRY', 'SETTLE_ORDER', 'REFUND',
     'COMPLETE_ACTIVATION', 'GRANT_AZURE_CREDIT', 'END_AT_ANNIVERSARY'));

-- Refunds have their own state, one row per refunded order: REFUND_PENDING → REFUNDED |
-- REFUND_FAILED (with the gateway's reason). A bank-transfer refund stays pending until an
-- operator records the outgoing transfer (`reference`). The order itself turns REFUNDED only
-- with its refund.
CREATE TABLE refunds (
    order_id      uuid PRIMARY KEY REFERENCES orders (id),
    partner_id    uuid NOT NULL REFERENCES partners (id),
    status        text NOT NULL CHECK (status IN ('REFUND_PENDING', 'REFUNDED', 'REFUND_FAILED')),
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      text NOT NULL,
    reference     text,
    failure       text,
    attempts      integer NOT NULL DEFAULT 0,
    requested_at  timestamptz NOT NULL,
    settled_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'REFUND_FAILED') = (failure IS NOT NULL)),
    CHECK (status <> 'REFUNDED' OR (reference IS NOT NULL AND settled_at IS NOT NULL))
);
CREATE INDEX refunds_partner ON refunds (partner_id);
INSERT INTO refunds (order_id, partner_id, status, amount_minor, currency, reference, requested_at, settled_at)
    SELECT id, partner_id, 'REFUNDED', refunded_minor, currency, 'before-refund-states', refunded_at, refunded_at
    FROM orders WHERE status = 'REFUNDED' AND refunded_minor > 0;
