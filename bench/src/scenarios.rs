//! The scenarios of issue 6. Each returns what the report prints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use crate::dataset::{DASHBOARD_BASE, PURCHASE_BASE, STORM_AHEAD_SECS, STORM_BASE};
use crate::load::{self, Outcome, Pace, Request};
use crate::system::CpuWindow;
use crate::Bench;

/// The portal's home page as an SPA sends it: page sizes as variables (so the document's
/// text is the same for every partner and page size, and is validated per request), with the
/// latest orders.
pub const DASHBOARD_QUERY: &str = "query Dashboard($subscriptions: Int!, $benefits: Int!, $invoices: Int!, $orders: Int!) {
  partner { id mpnId legalName vetting { status } networkMembership { since } }
  subscriptions(first: $subscriptions) {
    edges { node { id status autoRenew term anniversaryDate offer { id name kind level } } }
    pageInfo { hasNextPage }
  }
  benefits(first: $benefits) {
    edges { node { id category product unit quantity used remaining status expiresAt
                   activation { state expectedCompletionAt completedAt } } }
    pageInfo { hasNextPage endCursor }
  }
  invoices(first: $invoices) {
    edges { node { id number issuedAt total { amountMinor currency formatted } } }
  }
  orders(first: $orders) {
    edges { node { id number kind status placedAt total { amountMinor currency formatted } offer { name } } }
    pageInfo { hasNextPage }
  }
}";

/// The dashboard request's body.
pub fn dashboard_body() -> serde_json::Value {
    json!({
        "query": DASHBOARD_QUERY,
        "operationName": "Dashboard",
        "variables": { "subscriptions": 20, "benefits": 50, "invoices": 5, "orders": 10 },
    })
}

const PURCHASE: &str = "mutation Buy($input: PurchaseInput!) {
  purchaseOffer(input: $input) { id number status total { amountMinor } }
}";

pub struct Cpu {
    /// Machine busy, % of all cores (host steal included).
    pub machine: f64,
    /// Stolen by the host, % of all cores.
    pub steal: f64,
    /// Cores busy on average, host steal left out, over `secs`.
    pub cores: f64,
    pub secs: f64,
    /// Cores busy: api, worker.
    pub api: f64,
    pub worker: f64,
}

impl Cpu {
    /// Machine CPU milliseconds (host steal left out) per operation, at `per_sec` operations
    /// per second over the window.
    pub fn ms_per_op(&self, per_sec: f64) -> f64 {
        1000.0 * self.cores / per_sec.max(1e-9)
    }

    /// Like [`Cpu::ms_per_op`] when the window holds `ops` operations in all.
    pub fn ms_per_op_of(&self, ops: f64) -> f64 {
        self.ms_per_op(ops / self.secs)
    }
}

fn cpu(window: CpuWindow) -> Cpu {
    let used = window.finish();
    Cpu {
        machine: used.busy_pct,
        steal: used.steal_pct,
        cores: used.cores,
        secs: used.secs,
        // api, worker, then the second pair's (`--pair`).
        api: used.procs.iter().step_by(2).sum(),
        worker: used.procs.iter().skip(1).step_by(2).sum(),
    }
}

/// A partner user's access token as production's identity provider issues it: RS256, checked
/// by the api against a JWKS (`JWT_JWKS_FILE`). The key pair is the repository's test fixture
/// (domain/tests/fixtures), not a secret.
fn token(bench: &Bench, mpn: u32) -> anyhow::Result<String> {
    crate::jwks::token(&bench.config.auth, &format!("bench-{mpn}"))
}

pub struct ListSize {
    pub label: &'static str,
    pub subscriptions: i64,
    pub benefits: i64,
    pub statements: u64,
}

pub struct Dashboard {
    /// Closed loop: capacity.
    pub outcome: Outcome,
    /// Open loop at `--dashboard-rate`: latency at that load.
    pub at_rate: Option<Outcome>,
    pub connections: usize,
    pub by_list_size: Vec<ListSize>,
    pub cpu: Cpu,
}

/// One dashboard request on its own, for its statement count.
async fn statements_of(bench: &Bench, http: &reqwest::Client, mpn: u32) -> anyhow::Result<u64> {
    let resp = http
        .post(format!("{}/graphql", bench.api_urls[0]))
        .bearer_auth(token(bench, mpn)?)
        .json(&dashboard_body())
        .send()
        .await?;
    let n = resp
        .headers()
        .get("x-sql-statements")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no x-sql-statements header"))?;
    let body = resp.bytes().await?;
    load::graphql_ok(&body).map_err(|e| anyhow::anyhow!("dashboard failed: {e}"))?;
    Ok(n)
}

/// A scenario's two runs (docs/BENCHMARKS.md, "How to run"): at `rate` first when it is above
/// 0, from a drained system, with the worker's share of that load (what the requests
/// schedule) running alongside as it would at that rate; then, once that work is done, as
/// fast as it answers, with the CPU it took.
async fn rate_then_closed(
    bench: &Bench,
    connections: usize,
    secs: u64,
    rate: f64,
    next: load::NextRequest,
    check: load::Check,
) -> anyhow::Result<(Option<Outcome>, Outcome, Cpu)> {
    let urls: Vec<String> = bench
        .api_urls
        .iter()
        .map(|u| format!("{u}/graphql"))
        .collect();
    let run = |pace| {
        load::run(
            &urls,
            pace,
            connections,
            Duration::from_secs(bench.args.warmup_secs),
            Duration::from_secs(secs),
            next.clone(),
            check.clone(),
        )
    };
    bench.drain(Duration::from_secs(120)).await?;
    let at_rate = if rate > 0.0 {
        let o = run(if bench.args.poisson {
            Pace::Poisson(rate)
        } else {
            Pace::Rate(rate)
        })
        .await?;
        bench.drain(Duration::from_secs(120)).await?;
        Some(o)
    } else {
        None
    };
    let window = CpuWindow::start(&bench.pids());
    let outcome = run(Pace::Closed).await?;
    Ok((at_rate, outcome, cpu(window)))
}

pub async fn dashboard(bench: &Bench) -> anyhow::Result<Dashboard> {
    let a = &bench.args;
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..a.partners)
            .map(|i| token(bench, DASHBOARD_BASE + i))
            .collect::<anyhow::Result<_>>()?,
    );
    let body = serde_json::to_vec(&dashboard_body())?;
    let next = {
        let tokens = tokens.clone();
        Arc::new(move || {
            let i = rand::rng().random_range(0..tokens.len());
            Some(Request {
                token: tokens[i].clone(),
                body: body.clone(),
            })
        })
    };
    let (at_rate, outcome, cpu) = rate_then_closed(
        bench,
        a.connections,
        a.dashboard_secs,
        a.dashboard_rate,
        next,
        Arc::new(load::graphql_ok),
    )
    .await?;
    // Statement counts whatever the list sizes: the partners with the fewest and the most
    // subscriptions and benefits, one request each once the pool's connections are open
    // (opening one sends a few set-up statements of its own).
    let http = reqwest::Client::new();
    let mut by_list_size = Vec::new();
    for (label, order) in [
        ("fewest subscriptions", "subs ASC, ents ASC"),
        ("most subscriptions", "subs DESC"),
        ("most benefits", "ents DESC"),
    ] {
        let row = bench
            .db
            .query_one(
                &format!(
                    "SELECT p.mpn_id,
                        (SELECT count(*) FROM subscriptions s WHERE s.partner_id = p.id) AS subs,
                        (SELECT count(*) FROM entitlements e WHERE e.partner_id = p.id AND e.status = 'ACTIVE') AS ents
                     FROM partners p WHERE p.mpn_id BETWEEN '{}' AND '{}'
                     ORDER BY {order} LIMIT 1",
                    DASHBOARD_BASE,
                    DASHBOARD_BASE + a.partners - 1
                ),
                &[],
            )
            .await?;
        let mpn: String = row.get(0);
        by_list_size.push(ListSize {
            label,
            subscriptions: row.get(1),
            benefits: row.get(2),
            statements: statements_of(bench, &http, mpn.parse()?).await?,
        });
    }

    Ok(Dashboard {
        outcome,
        at_rate,
        connections: a.connections,
        by_list_size,
        cpu,
    })
}

pub struct Purchase {
    /// Closed loop: capacity.
    pub outcome: Outcome,
    /// Open loop at `--purchase-rate`: latency at that load.
    pub at_rate: Option<Outcome>,
    pub connections: usize,
    pub orders_paid: i64,
    pub charges: i64,
    /// Partners with more than one order or charge for the offer (must be 0).
    pub duplicates: i64,
    pub cpu: Cpu,
}

pub async fn purchase(bench: &Bench) -> anyhow::Result<Purchase> {
    let a = &bench.args;
    let rows = bench
        .db
        .query(
            &format!(
                "SELECT p.mpn_id, pm.id::text FROM partners p
                 JOIN payment_methods pm ON pm.partner_id = p.id
                 WHERE p.mpn_id BETWEEN '{}' AND '{}' ORDER BY p.mpn_id",
                PURCHASE_BASE,
                PURCHASE_BASE + a.purchase_partners - 1
            ),
            &[],
        )
        .await?;
    let buyers: Arc<Vec<(String, String)>> = Arc::new(
        rows.iter()
            .map(|r| {
                let mpn: String = r.get(0);
                Ok((token(bench, mpn.parse()?)?, r.get::<_, String>(1)))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let cursor = Arc::new(AtomicUsize::new(0));
    let next = {
        let buyers = buyers.clone();
        Arc::new(move || {
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            let (token, card) = buyers.get(i)?;
            Some(Request::json(
                token.clone(),
                &json!({
                    "query": PURCHASE,
                    "operationName": "Buy",
                    "variables": { "input": {
                        "offerId": "ACTION_PACK",
                        "idempotencyKey": uuid::Uuid::new_v4().to_string(),
                        "acceptTermsVersion": "2021-06",
                        "payment": { "paymentMethodId": card },
                    }},
                }),
            ))
        })
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Bought {
        purchase_offer: Order,
    }
    #[derive(serde::Deserialize)]
    struct Order {
        status: String,
    }
    let check = Arc::new(|bytes: &[u8]| {
        let bought: Bought = load::graphql_data(bytes)?;
        match bought.purchase_offer.status.as_str() {
            "PAID" => Ok(()),
            other => Err(format!("order not paid: {other}")),
        }
    });
    // The buyers' list goes on from one run to the next: every purchase is a partner's first.
    let (at_rate, outcome, cpu) = rate_then_closed(
        bench,
        a.purchase_connections,
        a.purchase_secs,
        a.purchase_rate,
        next,
        check,
    )
    .await?;
    let range = format!(
        "p.mpn_id BETWEEN '{}' AND '{}'",
        PURCHASE_BASE,
        PURCHASE_BASE + a.purchase_partners - 1
    );
    let row = bench
        .db
        .query_one(
            &format!(
                "WITH o AS (SELECT o.* FROM orders o JOIN partners p ON p.id = o.partner_id WHERE {range})
                 SELECT (SELECT count(*) FROM o WHERE status = 'PAID'),
                        (SELECT count(*) FROM sandbox_charges c JOIN o ON c.id = o.gateway_charge_id),
                        (SELECT count(*) FROM (SELECT partner_id FROM o WHERE status = 'PAID'
                                               GROUP BY partner_id HAVING count(*) > 1) d)"
            ),
            &[],
        )
        .await?;
    Ok(Purchase {
        outcome,
        at_rate,
        connections: a.purchase_connections,
        orders_paid: row.get(0),
        charges: row.get(1),
        duplicates: row.get(2),
        cpu,
    })
}

pub struct Emails {
    pub jobs: u32,
    pub relayed_secs: f64,
    pub first_sent_secs: f64,
    pub delivered_secs: f64,
    pub delivered: i64,
    pub smtp_accepted: u64,
    pub peak_redis_waiting: i64,
    /// Worker SQL statements per delivered email (relay included).
    pub statements_per_job: f64,
    pub cpu: Cpu,
}

pub async fn emails(bench: &Bench) -> anyhow::Result<Emails> {
    let n = bench.args.emails;
    bench.drain(Duration::from_secs(300)).await?;
    let smtp_before = bench.smtp.accepted();
    // One transaction, as if 100,000 state changes had each queued an email at once.
    let burst = Burst::commit(
        bench,
        &format!(
            "WITH e AS (
                     INSERT INTO emails (id, template, recipient, subject, body_text, body_html,
                         status, next_attempt_at)
                     SELECT gen_random_uuid(), 'bench', 'reader' || g || '@bench.example',
                         'Benchmark message ' || g,
                         'Hello from the benchmark, message ' || g || '.',
                         '<p>Hello from the benchmark, message ' || g || '.</p>',
                         'PENDING', now()
                     FROM generate_series(1, {n}) g RETURNING id),
                 o AS (INSERT INTO outbox (queue, payload)
                     SELECT 'email', jsonb_build_object('v', 1, 'email_id', id) FROM e RETURNING 1)
                 SELECT clock_timestamp() FROM (SELECT count(*) FROM o) c"
        ),
    )
    .await?;
    let (max_id, t0) = (burst.max_id, burst.t0);
    let mut redis = bench.redis().await?;
    let prefix = &bench.env["QUEUE_PREFIX"];
    let mut peak_waiting = 0i64;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let waiting = gateway_domain::queues::counts(&mut redis, prefix, "email")
            .await
            .map(|c| c.pending)
            .unwrap_or(0);
        peak_waiting = peak_waiting.max(waiting);
        // Progress is read off the SMTP sink's own count, in this process: counting the
        // emails table every poll cost Postgres about a sixth of a core (item 25). The table
        // is asked only once the sink has them all, for the worker to have marked them sent.
        let done = bench.smtp.accepted() - smtp_before >= u64::from(n) && {
            let sent: i64 = bench
                .db
                .query_one(
                    "SELECT count(*) FROM emails WHERE template = 'bench' AND status <> 'PENDING'",
                    &[],
                )
                .await?
                .get(0);
            sent >= i64::from(n)
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu = cpu(burst.window);
    let row = bench
        .db
        .query_one(
            &format!(
                "SELECT (SELECT extract(epoch FROM max(dispatched_at) - $1)::float8 FROM outbox
                         WHERE id > {max_id} AND queue = 'email'),
                        extract(epoch FROM min(sent_at) - $1)::float8,
                        extract(epoch FROM max(sent_at) - $1)::float8,
                        count(*) FILTER (WHERE status = 'SENT')
                 FROM emails WHERE template = 'bench'"
            ),
            &[&t0],
        )
        .await?;
    Ok(Emails {
        jobs: n,
        relayed_secs: row.get::<_, Option<f64>>(0).unwrap_or(f64::NAN),
        first_sent_secs: row.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
        delivered_secs: row.get::<_, Option<f64>>(2).unwrap_or(f64::NAN),
        delivered: row.get(3),
        smtp_accepted: bench.smtp.accepted() - smtp_before,
        peak_redis_waiting: peak_waiting,
        statements_per_job: (bench.worker_statements().await? - burst.statements_before) as f64
            / f64::from(n),
        cpu,
    })
}

pub struct Renewals {
    pub subscriptions: u32,
    pub renewed: i64,
    pub invoiced: i64,
    /// From the clock move to the last renewal invoice.
    pub secs: f64,
    pub first_secs: f64,
    pub charges: i64,
    /// Subscriptions charged more than once, renewal orders beyond one per term.
    pub duplicate_charges: i64,
    pub duplicate_orders: i64,
    /// Worker SQL statements per renewal done (dispatch, relay, charge, booking, receipt
    /// email, and the receipt emails sent meanwhile).
    pub statements_per_renewal: f64,
    pub cpu: Cpu,
}

pub async fn renewals(bench: &Bench) -> anyhow::Result<Renewals> {
    let n = bench.args.renewals;
    bench.drain(Duration::from_secs(300)).await?;
    let range = format!(
        "p.mpn_id BETWEEN '{}' AND '{}'",
        STORM_BASE,
        STORM_BASE + n - 1
    );
    let statements_before = bench.worker_statements().await?;
    // Progress is read off the invoice counters (a few rows: every renewal books exactly one
    // invoice, nothing else invoices meanwhile), not by counting orders: a join over the
    // storm's orders every poll cost the storm a noticeable share of Postgres' CPU.
    let invoiced_sql = "SELECT coalesce(sum(last_number), 0)::int8 FROM invoice_counters";
    let invoiced_before: i64 = bench.db.query_one(invoiced_sql, &[]).await?.get(0);
    let window = CpuWindow::start(&bench.pids());
    // The instant: every storm partner's clock reaches the anniversary in one commit.
    let t0: chrono::DateTime<chrono::Utc> = bench
        .db
        .query_one(
            &format!(
                "WITH c AS (UPDATE test_clocks t SET offset_seconds = {}
                     FROM partners p WHERE p.id = t.partner_id AND {range} RETURNING 1)
                 SELECT clock_timestamp() FROM (SELECT count(*) FROM c) x",
                STORM_AHEAD_SECS + 1
            ),
            &[],
        )
        .await?
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(bench.args.storm_limit_secs);
    let mut last_report = Instant::now();
    loop {
        let invoiced: i64 = bench.db.query_one(invoiced_sql, &[]).await?.get(0);
        let done = invoiced - invoiced_before;
        if done >= i64::from(n) || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!("    {done} of {n} renewed");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cpu = cpu(window);
    let statements = bench.worker_statements().await? - statements_before;
    let row = bench
        .db
        .query_one(
            &format!(
                "WITH o AS (SELECT o.* FROM orders o JOIN partners p ON p.id = o.partner_id
                            WHERE {range} AND o.kind = 'RENEWAL'),
                      ch AS (SELECT c.* FROM sandbox_charges c WHERE c.idempotency_key LIKE 'renewal:%')
                 SELECT (SELECT count(*) FROM o WHERE status = 'PAID'),
                        (SELECT count(*) FROM invoices i JOIN o ON o.id = i.order_id),
                        (SELECT extract(epoch FROM max(i.created_at) - $1)::float8
                           FROM invoices i JOIN o ON o.id = i.order_id),
                        (SELECT extract(epoch FROM min(i.created_at) - $1)::float8
                           FROM invoices i JOIN o ON o.id = i.order_id),
                        (SELECT count(*) FROM ch),
                        (SELECT count(*) FROM (SELECT split_part(idempotency_key, ':', 2)
                           FROM ch GROUP BY 1 HAVING count(*) > 1) d),
                        (SELECT count(*) FROM (SELECT subscription_id, term FROM o
                           GROUP BY 1, 2 HAVING count(*) > 1) d)"
            ),
            &[&t0],
        )
        .await?;
    Ok(Renewals {
        subscriptions: n,
        renewed: row.get(0),
        invoiced: row.get(1),
        secs: row.get::<_, Option<f64>>(2).unwrap_or(f64::NAN),
        first_secs: row.get::<_, Option<f64>>(3).unwrap_or(f64::NAN),
        charges: row.get(4),
        duplicate_charges: row.get(5),
        duplicate_orders: row.get(6),
        statements_per_renewal: statements as f64 / (row.get::<_, i64>(0).max(1) as f64),
        cpu,
    })
}

/// A burst of outbox rows committed in one statement (the emails and jobs scenarios): the
/// worker's statements, the last outbox id and the CPU before it, and the commit's time.
struct Burst {
    statements_before: u64,
    max_id: i64,
    window: CpuWindow,
    t0: chrono::DateTime<chrono::Utc>,
}

impl Burst {
    /// Runs `sql`, one statement that inserts the rows and returns `clock_timestamp()`.
    async fn commit(bench: &Bench, sql: &str) -> anyhow::Result<Self> {
        let statements_before = bench.worker_statements().await?;
        let max_id: i64 = bench
            .db
            .query_one("SELECT coalesce(max(id), 0) FROM outbox", &[])
            .await?
            .get(0);
        let window = CpuWindow::start(&bench.pids());
        let t0 = bench.db.query_one(sql, &[]).await?.get(0);
        Ok(Self {
            statements_before,
            max_id,
            window,
            t0,
        })
    }
}

pub struct Jobs {
    pub jobs: u32,
    /// From the commit of the outbox rows to the last one relayed to Redis.
    pub relayed_secs: f64,
    /// From the commit to the last job done (apalis' done set holds all of them).
    pub done_secs: f64,
    pub peak_redis_waiting: i64,
    /// Worker SQL statements per job (relay, job, sweep meanwhile).
    pub statements_per_job: f64,
    /// Jobs done in each second after the commit.
    pub per_second: Vec<i64>,
    pub cpu: Cpu,
}

/// One job per due action, no batching: `--jobs` due actions that are already final (each job
/// reads its action, finds nothing to do and ends), queued on the `lifecycle` queue in one
/// commit. Measures the job machinery itself: relay, Redis, apalis, the job's bookkeeping.
pub async fn jobs(bench: &Bench) -> anyhow::Result<Jobs> {
    let n = bench.args.jobs;
    bench.drain(Duration::from_secs(300)).await?;
    let prefix = &bench.env["QUEUE_PREFIX"];
    let mut redis = bench.redis().await?;
    let keys = gateway_domain::queues::keys::Keys::new(prefix, "lifecycle");
    let done_before: i64 = redis::cmd("SCARD")
        .arg(keys.done())
        .query_async(&mut redis)
        .await?;
    let burst = Burst::commit(
        bench,
        &format!(
            "WITH p AS (SELECT id FROM partners ORDER BY mpn_id LIMIT 1),
                 a AS (INSERT INTO scheduled_actions
                         (id, partner_id, kind, subject_id, term, tag, due_at, status)
                     SELECT gen_random_uuid(), p.id, 'LAPSE', gen_random_uuid(), 1, 'bench-jobs',
                         now(), 'DONE'
                     FROM p, generate_series(1, {n}) RETURNING id),
                 o AS (INSERT INTO outbox (queue, payload)
                     SELECT 'lifecycle', jsonb_build_object('v', 1, 'action_id', a.id) FROM a
                     RETURNING 1)
                 SELECT clock_timestamp() FROM (SELECT count(*) FROM o) c"
        ),
    )
    .await?;
    let (max_id, t0) = (burst.max_id, burst.t0);
    let started = Instant::now();
    let mut peak_waiting = 0i64;
    let mut per_second = Vec::new();
    let mut last_done = 0i64;
    let deadline = started + Duration::from_secs(600);
    let mut next_second = started + Duration::from_secs(1);
    loop {
        let (done, active): (i64, i64) = redis::pipe()
            .scard(keys.done())
            .llen(keys.active())
            .query_async(&mut redis)
            .await?;
        let done = done - done_before;
        peak_waiting = peak_waiting.max(active);
        if Instant::now() >= next_second {
            per_second.push(done - last_done);
            last_done = done;
            next_second += Duration::from_secs(1);
        }
        if done >= i64::from(n) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The commit's time is Postgres' clock, on this machine.
    let done_secs = (chrono::Utc::now() - t0)
        .num_microseconds()
        .unwrap_or(i64::MAX) as f64
        / 1e6;
    per_second.push(
        (redis::cmd("SCARD")
            .arg(keys.done())
            .query_async::<i64>(&mut redis)
            .await?
            - done_before)
            - last_done,
    );
    let cpu = cpu(burst.window);
    let relayed: Option<f64> = bench
        .db
        .query_one(
            &format!(
                "SELECT extract(epoch FROM max(dispatched_at) - $1)::float8 FROM outbox
                 WHERE id > {max_id} AND queue = 'lifecycle'"
            ),
            &[&t0],
        )
        .await?
        .get(0);
    Ok(Jobs {
        jobs: n,
        relayed_secs: relayed.unwrap_or(f64::NAN),
        done_secs,
        peak_redis_waiting: peak_waiting,
        statements_per_job: (bench.worker_statements().await? - burst.statements_before) as f64
            / f64::from(n),
        per_second,
        cpu,
    })
}
