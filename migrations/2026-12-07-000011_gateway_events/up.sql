-- Webhook events from the payment gateway (Stripe), one row per event id: a replayed event
-- finds its row and changes nothing. Written with what the event asks for (due work pulled
-- forward) in one transaction.
CREATE TABLE gateway_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
