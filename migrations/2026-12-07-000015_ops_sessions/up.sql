-- Operators' console sessions: an operator token exchanged once for a short-lived HttpOnly
-- cookie (`/ops`). Only the SHA-256 of the cookie's value is kept; the CSRF token is sent back
-- in a header on every console request.
CREATE TABLE ops_sessions (
    id_hash     bytea PRIMARY KEY,
    operator_id uuid NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX ops_sessions_expiry ON ops_sessions (expires_at);
