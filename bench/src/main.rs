//! `pbg-bench` (run by `scripts/bench`): builds its own database and data set, starts the
//! release api and worker as their own processes, drives each scenario from this process,
//! prints a table and writes it to docs/BENCHMARKS.md with a latency plot.

mod dataset;
mod load;
mod report;
mod scenarios;
mod system;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use gateway_testkit::SmtpSink;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmarks of the partner benefits gateway (docs/BENCHMARKS.md)")]
pub struct Args {
    /// Scenarios to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dashboard,purchase,emails,renewals"
    )]
    pub scenarios: Vec<String>,
    /// Dashboard: concurrent connections and measured seconds (after a warm-up).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 30)]
    pub dashboard_secs: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Dashboard: before the closed loop, the same connections and duration at this many
    /// requests per second in all (open loop; its latency is the one the target is about).
    /// 0: closed loop only.
    #[arg(long, default_value_t = 2000.0)]
    pub dashboard_rate: f64,
    /// Purchases: concurrent connections and measured seconds.
    #[arg(long, default_value_t = 32)]
    pub purchase_connections: usize,
    #[arg(long, default_value_t = 20)]
    pub purchase_secs: u64,
    /// Purchases: before the closed loop, the same connections and duration at this many
    /// purchases per second (open loop). 0: closed loop only.
    #[arg(long, default_value_t = 300.0)]
    pub purchase_rate: f64,
    /// Email jobs sent through outbox → Redis → worker → SMTP.
    #[arg(long, default_value_t = 100_000)]
    pub emails: u32,
    /// Subscriptions renewing at the same instant.
    #[arg(long, default_value_t = 100_000)]
    pub renewals: u32,
    /// Stop waiting for the storm after this long (the report says how far it got).
    #[arg(long, default_value_t = 300)]
    pub storm_limit_secs: u64,
    /// Data set: dashboard partners and their subscriptions.
    #[arg(long, default_value_t = 10_000)]
    pub partners: u32,
    #[arg(long, default_value_t = 50_000)]
    pub subscriptions: u32,
    /// Partners who have bought nothing yet (one purchase each).
    #[arg(long, default_value_t = 40_000)]
    pub purchase_partners: u32,
    /// Where to write the report (docs/BENCHMARKS.md); none: print only.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Database name on the server of PG_ADMIN_URL (dropped and made again).
    #[arg(long, default_value = "pbg_bench")]
    pub database: String,
    /// Drop the database and its queues' Redis keys at the end (the smoke test does).
    #[arg(long)]
    pub drop_database: bool,
}

/// Settings passed on to the api and worker when set here (to try other values).
const PASS_THROUGH: &[&str] = &[
    "DATABASE_POOL_SIZE",
    "WORKER_CONCURRENCY",
    "RELAY_INTERVAL_MS",
    "RELAY_REDIS_WATERMARK",
    "SWEEP_INTERVAL_MS",
    "WORKER_POLL_MS",
    "RENEWAL_BATCH",
    "EMAIL_BATCH",
    "RUST_LOG",
];

pub struct Bench {
    pub args: Args,
    pub db: tokio_postgres::Client,
    pub env: BTreeMap<String, String>,
    pub api_url: String,
    pub api: system::Process,
    pub worker: system::Process,
    pub smtp: SmtpSink,
    pub config: gateway_domain::config::Config,
}

impl Bench {
    /// SQL statements the worker process has sent so far (its metrics endpoint).
    pub async fn worker_statements(&self) -> anyhow::Result<u64> {
        let text = reqwest::get(format!(
            "http://{}/metrics",
            self.env["WORKER_METRICS_BIND"]
        ))
        .await?
        .text()
        .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("pbg_sql_statements_total "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("worker metrics without pbg_sql_statements_total"))
    }

    pub fn pids(&self) -> [u32; 2] {
        [self.api.pid, self.worker.pid]
    }

    /// Waits until the worker has nothing left to do: outbox relayed, emails final, no
    /// due action pending. Gives up after `limit`.
    pub async fn drain(&self, limit: Duration) -> anyhow::Result<bool> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            let row = self
                .db
                .query_one(
                    "SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL AND run_at <= now())
                          + (SELECT count(*) FROM emails WHERE status = 'PENDING' AND next_attempt_at <= now())",
                    &[],
                )
                .await?;
            if row.get::<_, i64>(0) == 0 {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(false)
    }
}

fn env_or(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (scripts/bench sets it)"))
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn setup(args: Args) -> anyhow::Result<(Bench, report::Setup)> {
    let admin_url = env_or("PG_ADMIN_URL")?;
    let redis_url = env_or("REDIS_URL")?;
    anyhow::ensure!(
        args.database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "--database: letters, digits and _ only"
    );
    let started = Instant::now();
    let admin = connect(&admin_url).await?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            args.database
        ))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", args.database))
        .await?;
    let db_url = format!(
        "{}/{}",
        admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url),
        args.database
    );
    // The queue prefix follows the database, so two runs on different databases stay apart.
    let prefix = args.database.as_str();
    // Jobs of an earlier run must not leak into this one.
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    gateway_testkit::clear_queues(&mut redis, prefix).await?;

    let smtp = SmtpSink::start_counting().await?;
    let port = free_port()?;
    let worker_metrics = free_port()?;
    let api_metrics = free_port()?;
    let mut env: BTreeMap<String, String> = [
        ("APP_ENV", "development".to_owned()),
        ("DATABASE_URL", db_url.clone()),
        ("REDIS_URL", redis_url),
        ("QUEUE_PREFIX", prefix.to_owned()),
        ("API_BIND", format!("127.0.0.1:{port}")),
        ("PORTAL_BASE_URL", "http://bench.local".to_owned()),
        ("EMAIL_TRANSPORT", "smtp".to_owned()),
        ("SMTP_URL", smtp.url()),
        ("TEST_CLOCKS_ENABLED", "true".to_owned()),
        ("SWEEP_INTERVAL_MS", "1000".to_owned()),
        ("WORKER_METRICS_BIND", format!("127.0.0.1:{worker_metrics}")),
        ("METRICS_BIND", format!("127.0.0.1:{api_metrics}")),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for name in PASS_THROUGH {
        if let Ok(v) = std::env::var(name) {
            env.insert((*name).to_owned(), v);
        }
    }
    let config = gateway_domain::config::Config::from_map(&env)
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;

    eprintln!("==> migrating and seeding {}", args.database);
    system::run_to_end("gateway-api", &["seed"], &env).await?;
    let db = connect(&db_url).await?;
    eprintln!("==> building the data set");
    let sizes = dataset::Sizes {
        partners: args.partners,
        subscriptions: args.subscriptions,
        purchase_partners: args.purchase_partners,
        storm: if args.scenarios.iter().any(|s| s == "renewals") {
            args.renewals
        } else {
            0
        },
    };
    let t = Instant::now();
    dataset::build(&db, &sizes).await?;
    let build_secs = t.elapsed().as_secs_f64();
    let (subs, benefit_rows) = dataset::dashboard_counts(&db, args.partners).await?;
    let setup_report = report::Setup {
        tables: dataset::counts(&db).await?,
        dashboard_subscriptions: subs,
        dashboard_benefit_rows: benefit_rows,
        build_secs,
        postgres: {
            let row = db
                .query_one(
                    "SELECT current_setting('server_version'), inet_client_addr() IS NULL",
                    &[],
                )
                .await?;
            let (version, unix): (String, bool) = (row.get(0), row.get(1));
            let path = if unix { "its Unix socket" } else { "TCP" };
            format!("{version} (reached through {path})")
        },
        redis: redis_version(&mut redis).await,
    };
    eprintln!(
        "==> data set ready in {build_secs:.0} s: {} dashboard partners, {subs} subscriptions, {benefit_rows} benefit rows",
        args.partners
    );

    let api = system::spawn("gateway-api", &["serve"], &env)?;
    let worker = system::spawn("gateway-worker", &[], &env)?;
    let api_url = format!("http://127.0.0.1:{port}");
    system::wait_healthy(&reqwest::Client::new(), &api_url).await?;
    eprintln!(
        "==> api (pid {}) and worker (pid {}) up after {:.0} s of set-up",
        api.pid,
        worker.pid,
        started.elapsed().as_secs_f64()
    );
    Ok((
        Bench {
            args,
            db,
            env,
            api_url,
            api,
            worker,
            smtp,
            config,
        },
        setup_report,
    ))
}

async fn redis_version(redis: &mut redis::aio::MultiplexedConnection) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(redis)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (mut bench, setup) = setup(args.clone()).await?;
    let mut results = report::Results::new(setup);
    for s in &args.scenarios {
        eprintln!("==> scenario: {s}");
        match s.as_str() {
            "dashboard" => results.dashboard = Some(scenarios::dashboard(&bench).await?),
            "purchase" => results.purchase = Some(scenarios::purchase(&bench).await?),
            "emails" => results.emails = Some(scenarios::emails(&bench).await?),
            "renewals" => results.renewals = Some(scenarios::renewals(&bench).await?),
            other => anyhow::bail!("unknown scenario {other}"),
        }
        results.sample_memory(&bench);
    }
    results.sample_memory(&bench);
    let _ = bench.api.child.kill().await;
    let _ = bench.worker.child.kill().await;
    if args.drop_database {
        let admin = connect(&env_or("PG_ADMIN_URL")?).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                args.database
            ))
            .await?;
        // The queues went with the database they follow.
        let mut redis = redis::Client::open(env_or("REDIS_URL")?.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        gateway_testkit::clear_queues(&mut redis, &args.database).await?;
    }
    let table = results.table();
    println!("{table}");
    if let Some(out) = &args.out {
        report::write(out, &results, &args)?;
        eprintln!("==> wrote {}", out.display());
    }
    Ok(())
}
