//! `pbg-bench` (run by `scripts/bench`): builds its own database and data set, starts the
//! release api and worker as their own processes, drives each scenario from this process,
//! prints a table and writes it to docs/BENCHMARKS.md with a latency plot.

mod dataset;
mod jwks;
mod load;
mod report;
mod scenarios;
mod system;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use gateway_domain::redis_conn::{RedisClient, RedisConn};
use gateway_testkit::SmtpSink;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmarks of the partner benefits gateway (docs/BENCHMARKS.md)")]
pub struct Args {
    /// Scenarios to run, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dashboard,purchase,emails,jobs,renewals"
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
    /// Open loops: arrivals as a Poisson process of the rate instead of evenly spaced.
    #[arg(long)]
    pub poisson: bool,
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
    /// Jobs scenario: due actions, one job each, through outbox → Redis → worker.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u32,
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
    /// Two api and two worker processes instead of one of each, through a Redis Cluster
    /// (`REDIS_CLUSTER_URL`) and PgBouncer in transaction mode (`PGBOUNCER_URL`), which
    /// scripts/bench starts; the load is spread over both apis.
    #[arg(long)]
    pub pair: bool,
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
    /// The apis' base URLs (two with `--pair`); load connections take turns.
    pub api_urls: Vec<String>,
    pub api: system::Process,
    pub worker: system::Process,
    /// `--pair`: the second api and worker.
    pub api2: Option<system::Process>,
    pub worker2: Option<system::Process>,
    /// The workers' metrics addresses.
    pub worker_metrics: Vec<String>,
    pub smtp: SmtpSink,
    pub config: gateway_domain::config::Config,
}

impl Bench {
    /// SQL statements the worker processes have sent so far (their metrics endpoints).
    pub async fn worker_statements(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for bind in &self.worker_metrics {
            let text = reqwest::get(format!("http://{bind}/metrics"))
                .await?
                .text()
                .await?;
            total += text
                .lines()
                .find_map(|l| l.strip_prefix("pbg_sql_statements_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!("worker metrics without pbg_sql_statements_total")
                })?;
        }
        Ok(total)
    }

    /// api, worker, then (`--pair`) the second api and worker.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.api.pid, self.worker.pid];
        pids.extend(self.api2.as_ref().map(|p| p.pid));
        pids.extend(self.worker2.as_ref().map(|p| p.pid));
        pids
    }

    /// The processes by name, for the memory report.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut all = vec![("api", self.api.pid), ("worker", self.worker.pid)];
        all.extend(self.api2.as_ref().map(|p| ("api 2", p.pid)));
        all.extend(self.worker2.as_ref().map(|p| ("worker 2", p.pid)));
        all
    }

    /// A connection to the Redis (or Redis Cluster) the processes use.
    pub async fn redis(&self) -> anyhow::Result<RedisConn> {
        Ok(RedisClient::open(&self.config.redis)?.connection().await?)
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
    // `--pair`: the cluster and the pooler (scripts/bench starts both).
    let (redis_url, cluster) = if args.pair {
        (env_or("REDIS_CLUSTER_URL")?, true)
    } else {
        (env_or("REDIS_URL")?, false)
    };
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
    let mut redis = RedisClient::open_url(&redis_url, cluster)?
        .connection()
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
        ("REDIS_CLUSTER", cluster.to_string()),
        ("QUEUE_PREFIX", prefix.to_owned()),
        ("API_BIND", format!("127.0.0.1:{port}")),
        ("PORTAL_BASE_URL", "http://bench.local".to_owned()),
        ("EMAIL_TRANSPORT", "smtp".to_owned()),
        ("SMTP_URL", smtp.url()),
        ("TEST_CLOCKS_ENABLED", "true".to_owned()),
        // Partner tokens are RS256, checked against this JWKS, as in production.
        (
            "JWT_JWKS_FILE",
            jwks::write_jwks_file(&std::env::temp_dir())?,
        ),
        ("WORKER_METRICS_BIND", format!("127.0.0.1:{worker_metrics}")),
        ("METRICS_BIND", format!("127.0.0.1:{api_metrics}")),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if args.pair {
        let bouncer = env_or("PGBOUNCER_URL")?;
        let base = bouncer.rsplit_once('/').map(|(b, _)| b).unwrap_or(&bouncer);
        env.insert("DATABASE_URL".into(), format!("{base}/{}", args.database));
        env.insert("DATABASE_DIRECT_URL".into(), db_url.clone());
        env.insert("DATABASE_POOLER".into(), "transaction".into());
    }
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
        postgres_settings: {
            let rows = db
                .query(
                    "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings
                     WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers',
                                    'max_wal_size', 'wal_compression', 'max_connections')
                     ORDER BY name",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| format!("{} = {}", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        redis: redis_version(&mut redis).await,
    };
    eprintln!(
        "==> data set ready in {build_secs:.0} s: {} dashboard partners, {subs} subscriptions, {benefit_rows} benefit rows",
        args.partners
    );

    let api = system::spawn("gateway-api", &["serve"], &env)?;
    let worker = system::spawn("gateway-worker", &[], &env)?;
    let mut api_urls = vec![format!("http://127.0.0.1:{port}")];
    let mut worker_metrics = vec![env["WORKER_METRICS_BIND"].clone()];
    let (mut api2, mut worker2) = (None, None);
    if args.pair {
        // The second pair: same settings, its own addresses.
        let mut env2 = env.clone();
        let port2 = free_port()?;
        env2.insert("API_BIND".into(), format!("127.0.0.1:{port2}"));
        env2.insert("METRICS_BIND".into(), format!("127.0.0.1:{}", free_port()?));
        env2.insert(
            "WORKER_METRICS_BIND".into(),
            format!("127.0.0.1:{}", free_port()?),
        );
        api2 = Some(system::spawn(
            "gateway-api",
            &["serve", "--no-migrate"],
            &env2,
        )?);
        worker2 = Some(system::spawn("gateway-worker", &[], &env2)?);
        api_urls.push(format!("http://127.0.0.1:{port2}"));
        worker_metrics.push(env2["WORKER_METRICS_BIND"].clone());
    }
    for url in &api_urls {
        system::wait_healthy(&reqwest::Client::new(), url).await?;
    }
    eprintln!(
        "==> api (pid {}) and worker (pid {}){} up after {:.0} s of set-up",
        api.pid,
        worker.pid,
        match (&api2, &worker2) {
            (Some(a), Some(w)) =>
                format!(", second api (pid {}) and worker (pid {})", a.pid, w.pid),
            _ => String::new(),
        },
        started.elapsed().as_secs_f64()
    );
    Ok((
        Bench {
            args,
            db,
            env,
            api_urls,
            api,
            worker,
            api2,
            worker2,
            worker_metrics,
            smtp,
            config,
        },
        setup_report,
    ))
}

async fn redis_version(redis: &mut RedisConn) -> String {
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
    results.pair = args.pair;
    for s in &args.scenarios {
        eprintln!("==> scenario: {s}");
        match s.as_str() {
            "dashboard" => results.dashboard = Some(scenarios::dashboard(&bench).await?),
            "purchase" => results.purchase = Some(scenarios::purchase(&bench).await?),
            "emails" => results.emails = Some(scenarios::emails(&bench).await?),
            "renewals" => results.renewals = Some(scenarios::renewals(&bench).await?),
            "jobs" => results.jobs = Some(scenarios::jobs(&bench).await?),
            other => anyhow::bail!("unknown scenario {other}"),
        }
        results.sample_memory(&bench);
    }
    results.sample_memory(&bench);
    let _ = bench.api.child.kill().await;
    let _ = bench.worker.child.kill().await;
    for p in [bench.api2.as_mut(), bench.worker2.as_mut()]
        .into_iter()
        .flatten()
    {
        let _ = p.child.kill().await;
    }
    if args.drop_database {
        let admin = connect(&env_or("PG_ADMIN_URL")?).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                args.database
            ))
            .await?;
        // The queues went with the database they follow.
        let mut redis = bench.redis().await?;
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
