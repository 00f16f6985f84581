-- Catalog, qualifications, test clocks, payment methods, orders, subscriptions, invoices,
-- scheduled (due) work, and the sandbox payment gateway's ledger.

-- Catalog (PRODUCT.md 2.3): data, not code. Prices in minor units.
CREATE TABLE competencies (
    code          text PRIMARY KEY CHECK (code ~ '^[A-Z_]+$'),
    name          text NOT NULL,
    solution_area text NOT NULL,
    -- Cloud competencies give unlimited Signature Cloud Support.
    cloud         boolean NOT NULL,
    -- Competencies that add Visual Studio Enterprise seats to Silver/Gold packages.
    vs_bonus      boolean NOT NULL
);

CREATE TABLE offers (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Z_]+$'),
    name           text NOT NULL,
    description    text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('MEMBERSHIP', 'ACTION_PACK', 'COMPETENCY')),
    level          text CHECK (level IN ('SILVER', 'GOLD')),
    price_minor    bigint NOT NULL CHECK (price_minor >= 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    annual         boolean NOT NULL,
    terms_version  text NOT NULL,
    sort           integer NOT NULL,
    CHECK ((kind = 'COMPETENCY') = (level IS NOT NULL))
);

-- What a package grants. Issue 4 turns these into entitlements.
CREATE TABLE offer_benefits (
    offer_id             text NOT NULL REFERENCES offers (id),
    code                 text NOT NULL CHECK (code ~ '^[A-Z0-9_]+$'),
    category             text NOT NULL CHECK (category IN ('SOFTWARE', 'CLOUD', 'VISUAL_STUDIO', 'TECHNICAL', 'GO_TO_MARKET')),
    product              text NOT NULL,
    delivery             text NOT NULL CHECK (delivery IN ('PRODUCT_KEY', 'LICENSE_KEY', 'AZURE_CREDIT', 'SEAT', 'ACCOUNT', 'SUPPORT_INCIDENTS', 'SIGNATURE_SUPPORT', 'ADVISORY_HOURS', 'GTM_OFFER')),
    -- NULL = unlimited.
    quantity             integer CHECK (quantity >= 0),
    unit                 text NOT NULL,
    -- Extra quantity per qualified competency that has vs_bonus (Visual Studio seats).
    bonus_per_competency integer NOT NULL DEFAULT 0,
    -- Unlimited when the package covers a cloud competency (Signature Cloud Support).
    unlimited_if_cloud   boolean NOT NULL DEFAULT false,
    -- Granted only when the package covers this competency (ISV Co-sell ready).
    requires_competency  text REFERENCES competencies (code),
    sort                 integer NOT NULL,
    PRIMARY KEY (offer_id, code)
);

INSERT INTO competencies (code, name, solution_area, cloud, vs_bonus) VALUES
    ('APP_DEVELOPMENT', 'App Development', 'Apps and Infrastructure', false, true),
    ('APP_INTEGRATION', 'App Integration', 'Apps and Infrastructure', false, false),
    ('CLOUD_PLATFORM', 'Cloud Platform', 'Apps and Infrastructure', true, true),
    ('DEVOPS', 'DevOps', 'Apps and Infrastructure', false, false),
    ('DATACENTER', 'Datacenter', 'Apps and Infrastructure', false, false),
    ('CLOUD_BUSINESS_APPLICATIONS', 'Cloud Business Applications', 'Business Applications', true, false),
    ('ERP', 'Enterprise Resource Planning', 'Business Applications', false, false),
    ('PROJECT_AND_PORTFOLIO', 'Project and Portfolio Management', 'Business Applications', false, false),
    ('DATA_ANALYTICS', 'Data Analytics', 'Data and AI', false, false),
    ('DATA_PLATFORM', 'Data Platform', 'Data and AI', false, false),
    ('COLLABORATION_AND_CONTENT', 'Collaboration and Content', 'Modern Workplace and Security', false, false),
    ('COMMUNICATIONS', 'Communications', 'Modern Workplace and Security', false, false),
    ('CLOUD_PRODUCTIVITY', 'Cloud Productivity', 'Modern Workplace and Security', true, true),
    ('ENTERPRISE_MOBILITY_MANAGEMENT', 'Enterprise Mobility Management', 'Modern Workplace and Security', true, false),
    ('MESSAGING', 'Messaging', 'Modern Workplace and Security', false, false),
    ('SECURITY', 'Security', 'Modern Workplace and Security', true, false),
    ('SMALL_AND_MIDMARKET_CLOUD_SOLUTIONS', 'Small and Midmarket Cloud Solutions', 'Modern Workplace and Security', true, false),
    ('WINDOWS_AND_DEVICES', 'Windows and Devices', 'Modern Workplace and Security', false, false);

INSERT INTO offers (id, name, description, kind, level, price_minor, currency, annual, terms_version, sort) VALUES
    ('NETWORK', 'Microsoft Partner Network membership', 'Free membership, granted on enrollment; never renews.', 'MEMBERSHIP', NULL, 0, 'USD', false, '2021-06', 0),
    ('ACTION_PACK', 'Microsoft Action Pack', 'Annual subscription with software, cloud services and support for growing partners. One per partner.', 'ACTION_PACK', NULL, 47500, 'USD', true, '2021-06', 1),
    ('SILVER', 'Silver competency benefits package', 'Annual package for partners qualified for at least one Silver competency.', 'COMPETENCY', 'SILVER', 190000, 'USD', true, '2021-06', 2),
    ('GOLD', 'Gold competency benefits package', 'Annual package for partners qualified for at least one Gold competency.', 'COMPETENCY', 'GOLD', 530000, 'USD', true, '2021-06', 3);

INSERT INTO offer_benefits (offer_id, code, category, product, delivery, quantity, unit, bonus_per_competency, unlimited_if_cloud, requires_competency, sort) VALUES
    ('ACTION_PACK', 'WINDOWS_10_ENTERPRISE', 'SOFTWARE', 'Windows 10 Enterprise (upgrade)', 'PRODUCT_KEY', 10, 'licenses', 0, false, NULL, 1),
    ('ACTION_PACK', 'VS_PROFESSIONAL', 'VISUAL_STUDIO', 'Visual Studio Professional subscription', 'SEAT', 3, 'subscriptions', 0, false, NULL, 2),
    ('ACTION_PACK', 'VSTS_ACCOUNT', 'VISUAL_STUDIO', 'Visual Studio Team Services account', 'ACCOUNT', 1, 'accounts', 0, false, NULL, 3),
    ('ACTION_PACK', 'OFFICE_365_E3', 'CLOUD', 'Office 365 E3', 'LICENSE_KEY', 10, 'seats', 0, false, NULL, 4),
    ('ACTION_PACK', 'EMS', 'CLOUD', 'Enterprise Mobility Suite', 'LICENSE_KEY', 5, 'seats', 0, false, NULL, 5),
    ('ACTION_PACK', 'DYNAMICS_CRM_ONLINE_PRO', 'CLOUD', 'Dynamics CRM Online Professional', 'LICENSE_KEY', 5, 'seats', 0, false, NULL, 6),
    ('ACTION_PACK', 'AZURE_MONTHLY_CREDIT', 'CLOUD', 'Azure credit (US$100 every month)', 'AZURE_CREDIT', 10000, 'USD cents per month', 0, false, NULL, 7),
    ('ACTION_PACK', 'PRODUCT_SUPPORT', 'TECHNICAL', 'Microsoft Product Support incidents', 'SUPPORT_INCIDENTS', 10, 'incidents', 0, false, NULL, 8),
    ('ACTION_PACK', 'ADVISORY_HOURS', 'TECHNICAL', 'Technical Presales and Deployment advisory hours', 'ADVISORY_HOURS', 5, 'hours', 0, false, NULL, 9),
    ('SILVER', 'PRODUCT_SUPPORT', 'TECHNICAL', 'Microsoft Product Support incidents', 'SUPPORT_INCIDENTS', 15, 'incidents', 0, false, NULL, 1),
    ('SILVER', 'SIGNATURE_CLOUD_SUPPORT', 'TECHNICAL', 'Signature Cloud Support incidents', 'SIGNATURE_SUPPORT', 5, 'incidents', 0, true, NULL, 2),
    ('SILVER', 'ADVISORY_HOURS', 'TECHNICAL', 'Technical Presales and Deployment advisory hours', 'ADVISORY_HOURS', 20, 'hours', 0, false, NULL, 3),
    ('SILVER', 'VS_ENTERPRISE', 'VISUAL_STUDIO', 'Visual Studio Enterprise subscription', 'SEAT', 5, 'subscriptions', 5, false, NULL, 4),
    ('SILVER', 'GTM_SILVER_CORE', 'GO_TO_MARKET', 'Silver Core', 'GTM_OFFER', 1, 'offers', 0, false, NULL, 5),
    ('GOLD', 'PRODUCT_SUPPORT', 'TECHNICAL', 'Microsoft Product Support incidents', 'SUPPORT_INCIDENTS', 20, 'incidents', 0, false, NULL, 1),
    ('GOLD', 'SIGNATURE_CLOUD_SUPPORT', 'TECHNICAL', 'Signature Cloud Support incidents', 'SIGNATURE_SUPPORT', 10, 'incidents', 0, true, NULL, 2),
    ('GOLD', 'ADVISORY_HOURS', 'TECHNICAL', 'Technical Presales and Deployment advisory hours', 'ADVISORY_HOURS', 50, 'hours', 0, false, NULL, 3),
    ('GOLD', 'VS_ENTERPRISE', 'VISUAL_STUDIO', 'Visual Studio Enterprise subscription', 'SEAT', 10, 'subscriptions', 25, false, NULL, 4),
    ('GOLD', 'GTM_GOLD_CORE', 'GO_TO_MARKET', 'Gold Core', 'GTM_OFFER', 1, 'offers', 0, false, NULL, 5),
    ('GOLD', 'GTM_ISV_CO_SELL_READY', 'GO_TO_MARKET', 'ISV Co-sell ready', 'GTM_OFFER', 1, 'offers', 0, false, 'APP_DEVELOPMENT', 6);

-- A competency a partner qualified for, recorded by an operator.
CREATE TABLE qualifications (
    id           uuid PRIMARY KEY,
    partner_id   uuid NOT NULL REFERENCES partners (id),
    competency   text NOT NULL REFERENCES competencies (code),
    level        text NOT NULL CHECK (level IN ('SILVER', 'GOLD')),
    qualified_on date NOT NULL,
    recorded_by  uuid NOT NULL REFERENCES operators (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, competency, level)
);

-- A partner's test clock: its time runs `offset_seconds` ahead of the real clock. Only read
-- when TEST_CLOCKS_ENABLED (never in production).
CREATE TABLE test_clocks (
    partner_id     uuid PRIMARY KEY REFERENCES partners (id),
    offset_seconds bigint NOT NULL CHECK (offset_seconds >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Cards are kept only as the gateway's token and what a person needs to recognise them.
CREATE TABLE payment_methods (
    id            uuid PRIMARY KEY,
    partner_id    uuid NOT NULL REFERENCES partners (id),
    gateway_token text NOT NULL UNIQUE,
    brand         text NOT NULL,
    last4         text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month     integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year      integer NOT NULL,
    holder_name   text NOT NULL,
    created_by    uuid NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz
);
CREATE INDEX payment_methods_partner_idx ON payment_methods (partner_id);

CREATE TABLE subscriptions (
    id                    uuid PRIMARY KEY,
    partner_id            uuid NOT NULL REFERENCES partners (id),
    offer_id              text NOT NULL REFERENCES offers (id),
    status                text NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'ACTIVE', 'IN_RENEWAL_WINDOW', 'LAPSED', 'CANCELLED', 'ORDER_EXPIRED')),
    auto_renew            boolean NOT NULL DEFAULT true,
    -- 1 for the first year, +1 per renewal.
    term                  integer NOT NULL DEFAULT 1 CHECK (term >= 1),
    competencies          text[] NOT NULL DEFAULT '{}',
    payment_method_id     uuid REFERENCES payment_methods (id),
    -- Times below are on the partner's clock (a test clock when one is set).
    activated_at          timestamptz,
    term_started_at       timestamptz,
    anniversary_at        timestamptz,
    upgrade_discount_used boolean NOT NULL DEFAULT false,
    upgraded_at           timestamptz,
    key_revealed_at       timestamptz,
    benefit_activated_at  timestamptz,
    renewal_failures      integer NOT NULL DEFAULT 0,
    last_renewal_error    text,
    ended_at              timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'PENDING_PAYMENT' OR status = 'ORDER_EXPIRED' OR status = 'CANCELLED' OR anniversary_at IS NOT NULL)
);
-- One live subscription per offer per partner (Action Pack once; Silver once; Gold once),
-- enforced here so concurrent purchases cannot both win.
CREATE UNIQUE INDEX subscriptions_one_live_per_offer ON subscriptions (partner_id, offer_id)
    WHERE status IN ('PENDING_PAYMENT', 'ACTIVE', 'IN_RENEWAL_WINDOW');
CREATE INDEX subscriptions_partner_idx ON subscriptions (partner_id, id);

CREATE TABLE orders (
    id                 uuid PRIMARY KEY,
    partner_id         uuid NOT NULL REFERENCES partners (id),
    number             text NOT NULL UNIQUE,
    kind               text NOT NULL CHECK (kind IN ('PURCHASE', 'RENEWAL')),
    offer_id           text NOT NULL REFERENCES offers (id),
    subscription_id    uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    term               integer NOT NULL,
    status             text NOT NULL CHECK (status IN ('PROCESSING', 'PENDING_PAYMENT', 'PAID', 'PAYMENT_FAILED', 'CANCELLED', 'EXPIRED', 'REFUNDED')),
    payment_kind       text NOT NULL CHECK (payment_kind IN ('CARD', 'BANK_TRANSFER')),
    payment_method_id  uuid REFERENCES payment_methods (id),
    -- Bank transfers: {contact_name, contact_phone, contact_email, reference}.
    bank_transfer      jsonb,
    currency           text NOT NULL,
    price_minor        bigint NOT NULL,
    discount_minor     bigint NOT NULL,
    tax_rate_bp        integer NOT NULL,
    tax_minor          bigint NOT NULL,
    total_minor        bigint NOT NULL,
    terms_version      text,
    competencies       text[] NOT NULL DEFAULT '{}',
    idempotency_key    text NOT NULL,
    -- SHA-256 of the canonical input: same key + different input is a CONFLICT.
    request_hash       text NOT NULL,
    placed_by          text NOT NULL,
    placed_at          timestamptz NOT NULL,
    expires_at         timestamptz,
    paid_at            timestamptz,
    gateway_charge_id  text,
    failure_code       text,
    failure_message    text,
    refunded_minor     bigint NOT NULL DEFAULT 0,
    refunded_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, idempotency_key),
    CHECK (total_minor = price_minor - discount_minor + tax_minor)
);
CREATE INDEX orders_partner_idx ON orders (partner_id, id);
CREATE INDEX orders_subscription_idx ON orders (subscription_id);

-- Gapless invoice numbers per year: the counter row is locked and bumped in the invoice's
-- own transaction, so a rolled-back invoice gives its number back.
CREATE TABLE invoice_counters (
    year        integer PRIMARY KEY,
    last_number integer NOT NULL
);

CREATE TABLE invoices (
    id             uuid PRIMARY KEY,
    partner_id     uuid NOT NULL REFERENCES partners (id),
    order_id       uuid NOT NULL UNIQUE REFERENCES orders (id),
    number         text NOT NULL UNIQUE,
    year           integer NOT NULL,
    seq            integer NOT NULL,
    issued_at      timestamptz NOT NULL,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz NOT NULL,
    bill_to        jsonb NOT NULL,
    lines          jsonb NOT NULL,
    currency       text NOT NULL,
    subtotal_minor bigint NOT NULL,
    discount_minor bigint NOT NULL,
    tax_rate_bp    integer NOT NULL,
    tax_minor      bigint NOT NULL,
    total_minor    bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (year, seq)
);
CREATE INDEX invoices_partner_idx ON invoices (partner_id, id);

-- Every piece of due work (a renewal charge, a reminder, a lapse, an order expiry, a refund),
-- with its due time on the partner's clock. The sweep finds due rows and dispatches a job;
-- the job marks the row DONE in the transaction that does the work, so a job that runs twice
-- does nothing the second time. The unique key makes "once per (subscription, term, kind)".
CREATE TABLE scheduled_actions (
    id            uuid PRIMARY KEY,
    partner_id    uuid NOT NULL REFERENCES partners (id),
    kind          text NOT NULL CHECK (kind IN ('RENEWAL_CHARGE', 'REMINDER', 'ENTER_RENEWAL_WINDOW', 'LAPSE', 'ORDER_EXPIRY', 'SETTLE_ORDER', 'REFUND')),
    subject_id    uuid NOT NULL,
    term          integer NOT NULL,
    tag           text NOT NULL DEFAULT '',
    due_at        timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('PENDING', 'DONE', 'CANCELLED')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    outcome       text,
    dispatched_at timestamptz,
    done_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, subject_id, term, tag)
);
CREATE INDEX scheduled_actions_due_idx ON scheduled_actions (due_at) WHERE status = 'PENDING';
CREATE INDEX scheduled_actions_subject_idx ON scheduled_actions (subject_id);

ALTER TABLE service_requests
    ADD CONSTRAINT service_requests_subscription_fk FOREIGN KEY (subscription_id) REFERENCES subscriptions (id);

-- The sandbox payment gateway's own books. In production the gateway is an external service;
-- the sandbox keeps its ledger here so that every process (api, workers) sees one gateway.
CREATE TABLE sandbox_cards (
    token      text PRIMARY KEY,
    brand      text NOT NULL,
    last4      text NOT NULL,
    behaviour  text NOT NULL CHECK (behaviour IN ('SUCCEED', 'DECLINE', 'TRANSIENT', 'HARD_DECLINE')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sandbox_charges (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    token           text,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sandbox_refunds (
    id              text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    charge_id       text NOT NULL REFERENCES sandbox_charges (id),
    amount_minor    bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
