-- No gateway call under a lock or inside a transaction (issue 20, item 9): the sandbox
-- gateway's journal of calls, kept only while FAULT_GATEWAY_DELAY_MS stalls each call, so a
-- test can see a call in flight. Never written otherwise.
CREATE TABLE sandbox_calls (
    id              bigserial PRIMARY KEY,
    operation       text NOT NULL,
    idempotency_key text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz
);
