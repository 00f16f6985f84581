//! The data set, made in Postgres with set-based SQL (seconds, not minutes):
//! - dashboard partners: users, a card, subscriptions over four years (one live per offer,
//!   older terms lapsed), their entitlements with balances and activation states, product
//!   keys, seat assignments, monthly Azure credit grants, and an order + invoice per term;
//! - purchase partners: authorized, one card each, nothing bought yet;
//! - storm partners: one Action Pack each, auto-renew on, all with the same anniversary,
//!   with their entitlements and the pending renewal charge.
//!
//! Partner sets are told apart by MPN ID ranges; the user of partner `mpn` signs in as
//! subject `bench-{mpn}`.

use tokio_postgres::Client;

pub const DASHBOARD_BASE: u32 = 1_000_000;
pub const PURCHASE_BASE: u32 = 2_000_000;
pub const STORM_BASE: u32 = 3_000_000;

/// How far ahead of real time the storm's anniversary lies; the storm starts when the storm
/// partners' test clocks are moved this far.
pub const STORM_AHEAD_SECS: i64 = 86_400;

pub struct Sizes {
    pub partners: u32,
    pub subscriptions: u32,
    pub purchase_partners: u32,
    pub storm: u32,
}

fn range(base: u32, n: u32) -> String {
    format!("p.mpn_id BETWEEN '{}' AND '{}'", base, base + n.max(1) - 1)
}

/// Partners `base..base+n`, each with an active Global admin (subject `bench-{mpn}`) and a
/// sandbox card that succeeds.
async fn partners(db: &Client, base: u32, n: u32) -> anyhow::Result<()> {
    let r = range(base, n);
    db.batch_execute(&format!(
        "INSERT INTO partners (id, mpn_id, legal_name, address_lines, city, region, postal_code,
             country, contact_first_name, contact_last_name, contact_email, contact_phone,
             contact_email_verified_at, tenant_id, tenant_created, vetting_status,
             vetting_sub_status, network_member_since, created_at)
         SELECT gen_random_uuid(), ({base} + g)::text, 'Bench Partner ' || ({base} + g),
             ARRAY['1 Microsoft Way'], 'Redmond', 'WA', '98052',
             (ARRAY['US','GB','DE','FR','JP','IN','BR','AU'])[1 + g % 8], 'Pat', 'Bench',
             'contact' || ({base} + g) || '@bench.example', '+14255550100', now(),
             gen_random_uuid(), true, 'AUTHORIZED', 'DECISION', now() - interval '4 years',
             now() - interval '4 years'
         FROM generate_series(0, {n} - 1) g;
         INSERT INTO users (id, partner_id, subject, email, display_name, roles, status)
         SELECT gen_random_uuid(), p.id, 'bench-' || p.mpn_id, 'admin' || p.mpn_id || '@bench.example',
             'Bench Admin', ARRAY['GLOBAL_ADMIN', 'ADMIN_AGENT'], 'ACTIVE'
         FROM partners p WHERE {r};
         INSERT INTO sandbox_cards (token, brand, last4, behaviour)
         SELECT 'tok_bench_' || p.mpn_id, 'visa', '4242', 'SUCCEED' FROM partners p WHERE {r};
         INSERT INTO payment_methods (id, partner_id, gateway_token, brand, last4, exp_month,
             exp_year, holder_name, created_by)
         SELECT gen_random_uuid(), p.id, 'tok_bench_' || p.mpn_id, 'visa', '4242', 12, 2035,
             'Pat Bench', u.id
         FROM partners p JOIN users u ON u.partner_id = p.id WHERE {r};"
    ))
    .await?;
    Ok(())
}

/// Entitlements of the subscriptions of partners in `r`, as `grant` makes them, with
/// consumption and activation states spread over what partners do.
async fn entitlements(db: &Client, r: &str) -> anyhow::Result<()> {
    db.batch_execute(&format!(
        "INSERT INTO entitlements (id, partner_id, subscription_id, offer_id, benefit_code,
             category, delivery, product, unit, quantity, used, term, status, activation,
             activation_requested_at, activation_due_at, activated_at, failure_reason,
             access_id, contract_id, expires_at, revoked_at, created_at)
         SELECT gen_random_uuid(), s.partner_id, s.id, s.offer_id, b.code, b.category,
             b.delivery, b.product, b.unit, b.quantity,
             CASE WHEN b.quantity IS NULL OR b.quantity = 0 THEN 0
                  ELSE floor(random() * (b.quantity + 1))::int END,
             s.term, CASE WHEN s.status = 'ACTIVE' THEN 'ACTIVE' ELSE 'REVOKED' END,
             x.act,
             CASE WHEN x.act <> 'NOT_ACTIVATED' THEN s.term_started_at + interval '3 days' END,
             CASE WHEN x.act <> 'NOT_ACTIVATED' THEN s.term_started_at + interval '5 days' END,
             CASE WHEN x.act = 'ACTIVE' THEN s.term_started_at + interval '5 days' END,
             CASE WHEN x.act = 'FAILED' THEN 'the support contract could not be created' END,
             CASE WHEN x.act = 'ACTIVE' AND b.category = 'TECHNICAL'
                  THEN 'ACC-' || substr(md5(random()::text), 1, 10) END,
             CASE WHEN x.act = 'ACTIVE' AND b.category = 'TECHNICAL'
                  THEN 'CON-' || substr(md5(random()::text), 1, 10) END,
             s.anniversary_at, CASE WHEN s.status = 'ACTIVE' THEN NULL ELSE s.ended_at END,
             s.term_started_at
         FROM subscriptions s
         JOIN partners p ON p.id = s.partner_id
         JOIN offer_benefits b ON b.offer_id = s.offer_id
         CROSS JOIN LATERAL (SELECT CASE WHEN b.category IN ('TECHNICAL', 'GO_TO_MARKET') THEN
             (ARRAY['NOT_ACTIVATED', 'ACTIVATION_PENDING', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'FAILED'])
                 [1 + floor(random() * 6)::int] END AS act) x
         WHERE {r};"
    ))
    .await?;
    Ok(())
}

pub async fn build(db: &Client, sizes: &Sizes) -> anyhow::Result<()> {
    db.batch_execute("SELECT setseed(0.42)").await?;
    let d = range(DASHBOARD_BASE, sizes.partners);
    partners(db, DASHBOARD_BASE, sizes.partners).await?;
    invited_users(db, &d).await?;
    subscriptions(db, sizes).await?;
    entitlements(db, &d).await?;
    benefit_rows(db, &d).await?;
    orders_and_invoices(db, &d).await?;
    partners(db, PURCHASE_BASE, sizes.purchase_partners).await?;
    storm(db, sizes).await?;
    // The scenarios start from a settled database, as a running system's would be: vacuumed
    // (hint bits and visibility maps set, so the first scenario does not pay for the bulk
    // load's first reads; this server may run without autovacuum), analyzed (plans know the
    // sizes) and checkpointed (the load's dirty pages are not written out during a run).
    db.batch_execute("VACUUM (ANALYZE)").await?;
    db.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// One partner in five has three more (invited) users.
async fn invited_users(db: &Client, d: &str) -> anyhow::Result<()> {
    db.batch_execute(&format!(
        "INSERT INTO users (id, partner_id, subject, email, roles, status)
         SELECT gen_random_uuid(), p.id, NULL, 'member' || k || '.' || p.mpn_id || '@bench.example',
             ARRAY['MPN_PARTNER_ADMIN'], 'INVITED'
         FROM partners p, generate_series(1, 3) k WHERE {d} AND p.mpn_id::int % 5 = 0;"
    ))
    .await?;
    Ok(())
}

/// Subscriptions: partners drawn with a skew (a few partners own dozens, most a handful);
/// per partner and offer the newest is live, the older ones lapsed.
async fn subscriptions(db: &Client, sizes: &Sizes) -> anyhow::Result<()> {
    let (np, ns) = (sizes.partners, sizes.subscriptions);
    db.batch_execute(&format!(
        "CREATE TEMP TABLE bench_subs AS
         SELECT gen_random_uuid() AS id, floor({np} * power(random(), 1.3))::int AS pidx,
             CASE WHEN r < 0.8 THEN 'ACTION_PACK' WHEN r < 0.9 THEN 'SILVER' ELSE 'GOLD' END AS offer_id,
             now() - random() * interval '4 years' AS started
         FROM (SELECT random() AS r FROM generate_series(1, {ns})) x;
         INSERT INTO subscriptions (id, partner_id, offer_id, status, auto_renew, term,
             competencies, payment_method_id, activated_at, term_started_at, anniversary_at,
             ended_at, created_at, updated_at)
         SELECT s.id, p.id, s.offer_id, CASE WHEN s.rk = 1 THEN 'ACTIVE' ELSE 'LAPSED' END,
             s.rk = 1, CASE WHEN s.rk = 1 THEN s.terms ELSE 1 END,
             CASE WHEN s.offer_id = 'ACTION_PACK' THEN '{{}}'::text[] ELSE ARRAY['CLOUD_PLATFORM'] END,
             pm.id, s.started,
             CASE WHEN s.rk = 1 THEN s.started + (s.terms - 1) * interval '1 year' ELSE s.started END,
             CASE WHEN s.rk = 1 THEN s.started + s.terms * interval '1 year'
                  ELSE s.started + interval '1 year' END,
             CASE WHEN s.rk = 1 THEN NULL ELSE s.started + interval '1 year 31 days' END,
             s.started, now()
         FROM (SELECT b.*, row_number() OVER (PARTITION BY pidx, offer_id ORDER BY started DESC) AS rk,
                   1 + floor(extract(epoch FROM now() - started) / 31557600)::int AS terms
               FROM bench_subs b) s
         JOIN partners p ON p.mpn_id = ({DASHBOARD_BASE} + s.pidx)::text
         JOIN payment_methods pm ON pm.partner_id = p.id;
         DROP TABLE bench_subs;"
    ))
    .await?;
    Ok(())
}

/// Azure credit months, product keys (some revealed) and seat assignments.
async fn benefit_rows(db: &Client, d: &str) -> anyhow::Result<()> {
    db.batch_execute(&format!(
        "INSERT INTO azure_credit_grants (id, entitlement_id, month_index, period_start,
             period_end, amount_minor, granted_at)
         SELECT gen_random_uuid(), e.id, m, s.term_started_at + m * interval '1 month',
             s.term_started_at + (m + 1) * interval '1 month', 10000,
             s.term_started_at + m * interval '1 month'
         FROM entitlements e JOIN subscriptions s ON s.id = e.subscription_id
         JOIN partners p ON p.id = e.partner_id
         CROSS JOIN LATERAL generate_series(0, LEAST(11,
             floor(extract(epoch FROM now() - s.term_started_at) / 2629800)::int)) m
         WHERE {d} AND e.delivery = 'AZURE_CREDIT' AND e.status = 'ACTIVE';
         INSERT INTO product_keys (id, entitlement_id, nonce, ciphertext, first_revealed_at, key_id)
         SELECT gen_random_uuid(), e.id, substr(decode(md5(random()::text), 'hex'), 1, 12),
             decode(md5(random()::text) || md5(random()::text), 'hex'),
             CASE WHEN random() < 0.4 THEN e.created_at + interval '2 days' END, 'default'
         FROM entitlements e JOIN partners p ON p.id = e.partner_id
         WHERE {d} AND e.delivery IN ('PRODUCT_KEY', 'LICENSE_KEY') AND e.status = 'ACTIVE';
         INSERT INTO benefit_assignments (id, entitlement_id, user_id, assigned_at, assigned_by)
         SELECT gen_random_uuid(), e.id, u.id, e.created_at + interval '1 day', u.id
         FROM entitlements e JOIN partners p ON p.id = e.partner_id
         JOIN users u ON u.partner_id = p.id AND u.subject IS NOT NULL
         WHERE {d} AND e.delivery = 'SEAT' AND e.status = 'ACTIVE';"
    ))
    .await?;
    Ok(())
}

/// An order and an invoice per term, numbered per year without gaps, and the counters set so
/// new invoices continue the sequence; the card charge of each order is in the sandbox
/// gateway's records, as the gateway would have it (an empty charges table made the planner's
/// first plans for it sequential scans that stayed for the whole run).
async fn orders_and_invoices(db: &Client, d: &str) -> anyhow::Result<()> {
    db.batch_execute(&format!(
        "CREATE TEMP TABLE bench_orders AS
         SELECT gen_random_uuid() AS id, s.partner_id, s.id AS subscription_id, s.offer_id,
             t AS term, s.activated_at + (t - 1) * interval '1 year' AS placed_at,
             o.price_minor, o.name AS offer_name, p.mpn_id, p.legal_name, p.country
         FROM subscriptions s JOIN offers o ON o.id = s.offer_id
         JOIN partners p ON p.id = s.partner_id
         CROSS JOIN LATERAL generate_series(1, s.term) t WHERE {d};
         INSERT INTO orders (id, partner_id, number, kind, offer_id, subscription_id, term,
             status, payment_kind, currency, price_minor, discount_minor, tax_rate_bp,
             tax_minor, total_minor, terms_version, idempotency_key, request_hash, placed_by,
             placed_at, paid_at, gateway_charge_id)
         SELECT b.id, b.partner_id, 'ORD-B' || lpad((row_number() OVER ())::text, 9, '0'),
             CASE WHEN b.term = 1 THEN 'PURCHASE' ELSE 'RENEWAL' END, b.offer_id,
             b.subscription_id, b.term, 'PAID', 'CARD', 'USD', b.price_minor, 0, 0, 0,
             b.price_minor, '2021-06', 'bench-' || b.id, 'bench', 'bench', b.placed_at,
             b.placed_at, 'ch_bench_' || replace(b.id::text, '-', '')
         FROM bench_orders b;
         INSERT INTO sandbox_charges (id, idempotency_key, amount_minor, currency, created_at)
         SELECT 'ch_bench_' || replace(b.id::text, '-', ''), 'order:' || b.id, b.price_minor,
             'USD', b.placed_at
         FROM bench_orders b;
         INSERT INTO invoices (id, partner_id, order_id, number, year, seq, issued_at,
             period_start, period_end, bill_to, lines, currency, subtotal_minor,
             discount_minor, tax_rate_bp, tax_minor, total_minor)
         SELECT gen_random_uuid(), b.partner_id, b.id,
             'INV-' || b.y || '-' || lpad(b.seq::text, 6, '0'), b.y, b.seq, b.placed_at,
             b.placed_at, b.placed_at + interval '1 year',
             jsonb_build_object('name', b.legal_name, 'mpn_id', b.mpn_id,
                 'address_lines', jsonb_build_array('1 Microsoft Way'), 'city', 'Redmond',
                 'region', 'WA', 'postal_code', '98052', 'country', b.country),
             jsonb_build_array(jsonb_build_object('description', b.offer_name, 'quantity', 1,
                 'unit_minor', b.price_minor, 'amount_minor', b.price_minor)),
             'USD', b.price_minor, 0, 0, 0, b.price_minor
         FROM (SELECT bo.*, extract(year FROM bo.placed_at)::int AS y,
                   row_number() OVER (PARTITION BY extract(year FROM bo.placed_at)
                                      ORDER BY bo.placed_at, bo.id) AS seq
               FROM bench_orders bo) b;
         DROP TABLE bench_orders;
         INSERT INTO invoice_counters (year, last_number)
         SELECT year, max(seq) FROM invoices GROUP BY year
         ON CONFLICT (year) DO UPDATE
             SET last_number = GREATEST(invoice_counters.last_number, EXCLUDED.last_number);"
    ))
    .await?;

    Ok(())
}

/// The storm: one Action Pack per partner, all reaching their anniversary at the same instant
/// of their test clocks, which run at real time (offset 0) until the scenario moves them.
/// Made here, the clocks are in the statistics (ANALYZE in `build`): inserted by the scenario
/// into a table the planner last saw empty, the workers' cached plans for the clock look-up
/// stayed sequential scans of 100,000 rows for the whole storm.
async fn storm(db: &Client, sizes: &Sizes) -> anyhow::Result<()> {
    if sizes.storm > 0 {
        let r = range(STORM_BASE, sizes.storm);
        partners(db, STORM_BASE, sizes.storm).await?;
        db.batch_execute(&format!(
            "CREATE TEMP TABLE bench_storm AS SELECT now() + interval '{STORM_AHEAD_SECS} seconds' AS ad;
             INSERT INTO subscriptions (id, partner_id, offer_id, status, auto_renew, term,
                 payment_method_id, activated_at, term_started_at, anniversary_at, created_at)
             SELECT gen_random_uuid(), p.id, 'ACTION_PACK', 'ACTIVE', true, 1, pm.id,
                 a.ad - interval '1 year', a.ad - interval '1 year', a.ad, a.ad - interval '1 year'
             FROM partners p JOIN payment_methods pm ON pm.partner_id = p.id, bench_storm a
             WHERE {r};
             INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, due_at, status)
             SELECT gen_random_uuid(), s.partner_id, k.kind, s.id, 1,
                 s.anniversary_at + k.after, 'PENDING'
             FROM subscriptions s JOIN partners p ON p.id = s.partner_id,
                 (VALUES ('RENEWAL_CHARGE', interval '0'), ('LAPSE', interval '31 days')) k(kind, after)
             WHERE {r};
             DROP TABLE bench_storm;
             INSERT INTO test_clocks (partner_id, offset_seconds)
             SELECT p.id, 0 FROM partners p WHERE {r};"
        ))
        .await?;
        entitlements(db, &r).await?;
    }
    Ok(())
}

/// Rows per table, for the report.
pub async fn counts(db: &Client) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for t in [
        "partners",
        "users",
        "subscriptions",
        "entitlements",
        "product_keys",
        "benefit_assignments",
        "azure_credit_grants",
        "orders",
        "invoices",
        "sandbox_charges",
        "scheduled_actions",
    ] {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await?
            .get(0);
        out.push((t.to_owned(), n));
    }
    Ok(out)
}

/// Dashboard partners only: subscriptions and benefit rows (entitlements, keys, seat
/// assignments, credit grants) of the 10,000.
pub async fn dashboard_counts(db: &Client, partners: u32) -> anyhow::Result<(i64, i64)> {
    let d = range(DASHBOARD_BASE, partners);
    let row = db
        .query_one(
            &format!(
                "WITH d AS (SELECT p.id FROM partners p WHERE {d}),
                      e AS (SELECT id FROM entitlements WHERE partner_id IN (SELECT id FROM d))
                 SELECT (SELECT count(*) FROM subscriptions WHERE partner_id IN (SELECT id FROM d)),
                        (SELECT count(*) FROM e)
                        + (SELECT count(*) FROM product_keys WHERE entitlement_id IN (SELECT id FROM e))
                        + (SELECT count(*) FROM benefit_assignments WHERE entitlement_id IN (SELECT id FROM e))
                        + (SELECT count(*) FROM azure_credit_grants WHERE entitlement_id IN (SELECT id FROM e))"
            ),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
