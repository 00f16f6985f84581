-- A partner's customer at the payment gateway (Stripe's cus_…), made when its first card is
-- attached; later cards attach to the same customer.
CREATE TABLE gateway_customers (
    partner_id  uuid PRIMARY KEY REFERENCES partners (id),
    customer_id text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
