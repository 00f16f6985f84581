-- Foundation: partners, users, operators, verification, email, outbox, service requests, audit.
-- Enumerations are text with CHECK constraints: readable in psql, mapped to Rust enums in the
-- domain crate (domain/src/enums.rs).

CREATE TABLE partners (
    id                        uuid PRIMARY KEY,
    mpn_id                    text NOT NULL UNIQUE CHECK (mpn_id ~ '^[0-9]{7}$'),
    legal_name                text NOT NULL,
    address_lines             text[] NOT NULL,
    city                      text NOT NULL,
    region                    text,
    postal_code               text NOT NULL,
    country                   text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    contact_first_name        text NOT NULL,
    contact_last_name         text NOT NULL,
    contact_email             text NOT NULL,
    contact_phone             text NOT NULL,
    contact_email_verified_at timestamptz,
    tenant_id                 uuid NOT NULL UNIQUE,
    tenant_created            boolean NOT NULL,
    vetting_status            text NOT NULL CHECK (vetting_status IN ('PENDING', 'AUTHORIZED', 'REJECTED')),
    vetting_sub_status        text NOT NULL CHECK (vetting_sub_status IN
                                ('EMAIL_OWNERSHIP', 'EMPLOYMENT_VERIFICATION', 'BUSINESS_VERIFICATION', 'DECISION')),
    fields_under_verification text[] NOT NULL DEFAULT '{}',
    vetting_reason            text,
    network_member_since      timestamptz NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id           uuid PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners (id),
    subject      text UNIQUE,
    email        text NOT NULL,
    display_name text,
    roles        text[] NOT NULL DEFAULT '{}'
                 CHECK (roles <@ ARRAY['GLOBAL_ADMIN', 'USER_ADMIN', 'ADMIN_AGENT', 'MPN_PARTNER_ADMIN']::text[]),
    status       text NOT NULL CHECK (status IN ('INVITED', 'ACTIVE', 'REMOVED')),
    invited_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- One identity, one partner: an email address belongs to at most one current partner user.
-- Removed users keep their row (audit, service requests point at them) but free the address.
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE status <> 'REMOVED';
CREATE INDEX users_partner_idx ON users (partner_id);

CREATE TABLE operators (
    id         uuid PRIMARY KEY,
    subject    text NOT NULL UNIQUE,
    email      text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agreement_acceptances (
    id          uuid PRIMARY KEY,
    partner_id  uuid NOT NULL REFERENCES partners (id),
    agreement   text NOT NULL,
    version     text NOT NULL,
    accepted_by uuid NOT NULL REFERENCES users (id),
    accepted_at timestamptz NOT NULL
);

CREATE TABLE email_verifications (
    id            uuid PRIMARY KEY,
    partner_id    uuid NOT NULL REFERENCES partners (id),
    email         text NOT NULL,
    -- SHA-256 of the token; the token itself only travels in the email.
    token_hash    text NOT NULL UNIQUE,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    superseded_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_verifications_partner_idx ON email_verifications (partner_id, created_at);

CREATE TABLE emails (
    id              uuid PRIMARY KEY,
    partner_id      uuid REFERENCES partners (id),
    template        text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    -- Rendered bodies are cleared once the message is delivered (they may carry tokens).
    body_text       text,
    body_html       text,
    status          text NOT NULL CHECK (status IN ('PENDING', 'SENT', 'DEAD')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emails_pending_idx ON emails (next_attempt_at) WHERE status = 'PENDING';

-- Transactional outbox: written in the same transaction as the state change it announces;
-- the worker's relay moves due rows to the Redis queues.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    queue         text NOT NULL,
    payload       jsonb NOT NULL,
    run_at        timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_undispatched_idx ON outbox (run_at, id) WHERE dispatched_at IS NULL;

CREATE TABLE service_requests (
    id              uuid PRIMARY KEY,
    partner_id      uuid NOT NULL REFERENCES partners (id),
    kind            text NOT NULL CHECK (kind IN ('BILLING', 'TECHNICAL_SUPPORT', 'PRESALES_DEPLOYMENT', 'OTHER')),
    title           text NOT NULL,
    description     text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('CRITICAL', 'MODERATE', 'MINIMAL')),
    status          text NOT NULL CHECK (status IN ('OPEN', 'ATTENTION_NEEDED', 'CLOSED')),
    product         text,
    subscription_id uuid,
    benefit_id      uuid,
    created_by      uuid NOT NULL REFERENCES users (id),
    resolution      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz
);
CREATE INDEX service_requests_partner_idx ON service_requests (partner_id, id);

CREATE TABLE service_request_notes (
    id                 uuid PRIMARY KEY,
    service_request_id uuid NOT NULL REFERENCES service_requests (id),
    author_kind        text NOT NULL CHECK (author_kind IN ('USER', 'OPERATOR')),
    author_id          uuid NOT NULL,
    author_name        text NOT NULL,
    body               text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_request_notes_request_idx ON service_request_notes (service_request_id, created_at);

CREATE TABLE audit_log (
    id          uuid PRIMARY KEY,
    partner_id  uuid REFERENCES partners (id),
    actor_kind  text NOT NULL CHECK (actor_kind IN ('USER', 'OPERATOR', 'IDENTITY', 'SYSTEM')),
    actor_id    text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_partner_idx ON audit_log (partner_id, id);
