-- Benefits (PRODUCT.md 2.6): entitlements granted by paid packages, product keys (encrypted),
-- seat and user assignments, Azure monthly credit, technical and Go-To-Market activation,
-- marketing contacts.

-- One row per benefit line of a subscription. Quantities are fixed when the package is paid
-- (competency bonuses included); NULL = unlimited. `used` counts consumption of balances
-- (incidents, hours) and assignments of seats; it resets each term.
CREATE TABLE entitlements (
    id                uuid PRIMARY KEY,
    partner_id        uuid NOT NULL REFERENCES partners (id),
    subscription_id   uuid NOT NULL REFERENCES subscriptions (id),
    offer_id          text NOT NULL REFERENCES offers (id),
    benefit_code      text NOT NULL,
    category          text NOT NULL CHECK (category IN ('SOFTWARE', 'CLOUD', 'VISUAL_STUDIO', 'TECHNICAL', 'GO_TO_MARKET')),
    delivery          text NOT NULL,
    product           text NOT NULL,
    unit              text NOT NULL,
    quantity          integer CHECK (quantity >= 0),
    used              integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    term              integer NOT NULL,
    status            text NOT NULL CHECK (status IN ('ACTIVE', 'REVOKED')),
    -- Technical benefits and Go-To-Market offers are activated; the others are not.
    activation        text CHECK (activation IN ('NOT_ACTIVATED', 'ACTIVATION_PENDING', 'ACTIVE', 'FAILED')),
    activation_requested_at timestamptz,
    activation_due_at timestamptz,
    activated_at      timestamptz,
    failure_reason    text,
    access_id         text,
    contract_id       text,
    -- End of the package's term (Go-To-Market offers expire then).
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, benefit_code),
    CHECK (quantity IS NULL OR used <= quantity)
);
CREATE INDEX entitlements_partner_idx ON entitlements (partner_id, category);

-- Product keys, encrypted at rest (AES-256-GCM with KEY_ENCRYPTION_KEY); the plain key only
-- exists in the reveal response.
CREATE TABLE product_keys (
    id             uuid PRIMARY KEY,
    entitlement_id uuid NOT NULL UNIQUE REFERENCES entitlements (id),
    nonce          bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    first_revealed_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Visual Studio seats and Azure usage-based users.
CREATE TABLE benefit_assignments (
    id             uuid PRIMARY KEY,
    entitlement_id uuid NOT NULL REFERENCES entitlements (id),
    user_id        uuid NOT NULL REFERENCES users (id),
    assigned_at    timestamptz NOT NULL,
    assigned_by    uuid NOT NULL REFERENCES users (id),
    unassigned_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX benefit_assignments_current ON benefit_assignments (entitlement_id, user_id)
    WHERE unassigned_at IS NULL;

-- US$100 of Azure credit per month of the term: one row per (entitlement, month), so a grant
-- can never happen twice; no roll-over (each month's balance is that month's grant).
CREATE TABLE azure_credit_grants (
    id             uuid PRIMARY KEY,
    entitlement_id uuid NOT NULL REFERENCES entitlements (id),
    month_index    integer NOT NULL CHECK (month_index >= 0),
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    amount_minor   bigint NOT NULL,
    granted_at     timestamptz NOT NULL,
    UNIQUE (entitlement_id, month_index)
);

CREATE TABLE marketing_contacts (
    partner_id uuid PRIMARY KEY REFERENCES partners (id),
    user_id    uuid NOT NULL REFERENCES users (id),
    email      text NOT NULL,
    phone      text NOT NULL,
    language   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE scheduled_actions DROP CONSTRAINT scheduled_actions_kind_check;
ALTER TABLE scheduled_actions ADD CONSTRAINT scheduled_actions_kind_check CHECK (kind IN
    ('RENEWAL_CHARGE', 'REMINDER', 'ENTER_RENEWAL_WINDOW', 'LAPSE', 'ORDER_EXPIRY', 'SETTLE_ORDER', 'REFUND',
     'COMPLETE_ACTIVATION', 'GRANT_AZURE_CREDIT'));

ALTER TABLE service_requests
    ADD CONSTRAINT service_requests_benefit_fk FOREIGN KEY (benefit_id) REFERENCES entitlements (id);
