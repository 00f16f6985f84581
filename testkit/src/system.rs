//! Starts the real `gateway-api` and `gateway-worker` binaries against a fresh database, a
//! unique queue prefix and an in-process SMTP server. Children are killed when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::{redis_url, SmtpSink, TestDb};

/// The binaries sit next to the test executable's folder: target/<profile>/{gateway-api,…}.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (`cargo build --bins`; scripts/test does it)",
        path.display()
    );
    path
}

/// A port no other test of this process was given. The OS may hand a just-released port to
/// the next bind(0); two tests starting at once could then both point an api at one port, and
/// the loser's health check would be answered by the other test's api.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct TestSystem {
    pub db: TestDb,
    pub smtp: SmtpSink,
    pub api_url: String,
    /// The api's `/metrics` on its private listener (METRICS_BIND).
    pub metrics_url: String,
    pub queue_prefix: String,
    pub env: BTreeMap<String, String>,
    pub api: Option<Child>,
    pub worker: Option<Child>,
    http: reqwest::Client,
}

impl TestSystem {
    /// Everything up: api answering /healthz, worker running.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Like `start`, with extra environment variables for both processes.
    pub async fn start_with(extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        if crate::redis_cluster() {
            // The cluster pass of scripts/test: make sure it really is one.
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut crate::redis_conn().await)
                .await?;
            anyhow::ensure!(
                info.contains("cluster_state:ok"),
                "REDIS_CLUSTER is set but {} is not a healthy Redis Cluster: {info}",
                redis_url()
            );
        }
        let db = TestDb::create().await?;
        let smtp = SmtpSink::start().await?;
        let port = free_port();
        let metrics_port = free_port();
        let queue_prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut env: BTreeMap<String, String> = [
            ("APP_ENV", "test".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            ("DATABASE_POOL_SIZE", "5".to_owned()),
            ("REDIS_URL", redis_url()),
            ("REDIS_CLUSTER", crate::redis_cluster().to_string()),
            ("QUEUE_PREFIX", queue_prefix.clone()),
            ("API_BIND", format!("127.0.0.1:{port}")),
            ("METRICS_BIND", format!("127.0.0.1:{metrics_port}")),
            ("PORTAL_BASE_URL", "http://portal.test".to_owned()),
            ("EMAIL_TRANSPORT", "smtp".to_owned()),
            ("SMTP_URL", smtp.url()),
            ("EMAIL_RETRY_BASE_MS", "200".to_owned()),
            ("RELAY_INTERVAL_MS", "50".to_owned()),
            ("SWEEP_INTERVAL_MS", "500".to_owned()),
            ("WORKER_POLL_MS", "100".to_owned()),
            ("VERIFICATION_RESEND_INTERVAL_SECS", "60".to_owned()),
            ("RUST_LOG", "warn,gateway=info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(bouncer) = crate::pgbouncer_url() {
            env.insert(
                "DATABASE_URL".into(),
                crate::db::url_for(&bouncer, &db.name),
            );
            env.insert("DATABASE_DIRECT_URL".into(), db.url.clone());
            env.insert("DATABASE_POOLER".into(), "transaction".into());
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let mut sys = Self {
            db,
            smtp,
            api_url: format!("http://127.0.0.1:{port}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
            queue_prefix,
            env,
            api: None,
            worker: None,
            http: reqwest::Client::new(),
        };
        sys.start_api().await?;
        sys.start_worker()?;
        Ok(sys)
    }

    fn spawn(&self, bin: &str, args: &[&str]) -> anyhow::Result<Child> {
        self.spawn_env(bin, args, &[])
    }

    /// Like `spawn`, with `extra` over the system's environment.
    fn spawn_env(&self, bin: &str, args: &[&str], extra: &[(&str, &str)]) -> anyhow::Result<Child> {
        let show = std::env::var("TEST_SHOW_LOGS").is_ok();
        let stderr = if show {
            Stdio::inherit()
        } else {
            // Kept for `logs()` (appended across restarts), removed with the system.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path(bin))?
                .into()
        };
        Ok(Command::new(bin_path(bin))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?)
    }

    fn log_path(&self, bin: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("pbg-{}-{bin}.log", self.queue_prefix))
    }

    /// Everything the api and worker processes logged so far (empty with TEST_SHOW_LOGS,
    /// which sends it to the terminal instead).
    pub fn logs(&self) -> String {
        ["gateway-api", "gateway-worker"]
            .iter()
            .map(|bin| std::fs::read_to_string(self.log_path(bin)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn start_api(&mut self) -> anyhow::Result<()> {
        self.api = Some(self.spawn("gateway-api", &["serve"])?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/healthz", self.api_url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.api.as_mut().unwrap().try_wait()? {
                anyhow::bail!(
                    "gateway-api exited early with {status} (set TEST_SHOW_LOGS=1 to see why)"
                );
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("gateway-api did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The api's `/metrics` text (from its private listener, METRICS_BIND).
    pub async fn metrics(&self) -> String {
        self.http
            .get(&self.metrics_url)
            .send()
            .await
            .expect("GET /metrics on METRICS_BIND")
            .text()
            .await
            .expect("metrics text")
    }

    /// Stops the api process (killed and reaped), e.g. to start it again with other settings.
    pub async fn stop_api(&mut self) {
        if let Some(mut api) = self.api.take() {
            let _ = api.kill().await;
        }
    }

    /// Runs `gateway-api <args>` with the system's environment and `extra` over it, to its end;
    /// returns whether it succeeded and what it wrote to stderr.
    pub async fn api_command(&self, args: &[&str], extra: &[(&str, &str)]) -> (bool, String) {
        let out = Command::new(bin_path("gateway-api"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .envs(extra.iter().copied())
            .output()
            .await
            .expect("run gateway-api");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `gateway-api mint-token ARGS` as a user of the binary would (with this system's
    /// environment) and returns the token it prints, or its error output.
    pub async fn mint_token(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(bin_path("gateway-api"))
            .arg("mint-token")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .output()
            .await
            .expect("run gateway-api mint-token");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Another api process on the same Postgres, Redis and queue prefix (a second replica),
    /// answering on its own port; returns it (killed when dropped) and its base URL.
    pub async fn spawn_api(&self) -> anyhow::Result<(Child, String)> {
        self.spawn_api_with(&[]).await
    }

    /// Like [`TestSystem::spawn_api`], with `extra` settings for that process.
    pub async fn spawn_api_with(&self, extra: &[(&str, &str)]) -> anyhow::Result<(Child, String)> {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let metrics_bind = format!("127.0.0.1:{}", free_port());
        let mut env = vec![
            ("API_BIND", bind.as_str()),
            ("METRICS_BIND", metrics_bind.as_str()),
        ];
        env.extend_from_slice(extra);
        let mut child = self.spawn_env("gateway-api", &["serve"], &env)?;
        let url = format!("http://{bind}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{url}/healthz")).send().await {
                if r.status().is_success() {
                    return Ok((child, url));
                }
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the second gateway-api exited early with {status}");
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the second gateway-api did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Another worker process (for tests that run several); killed when dropped.
    pub fn spawn_worker(&self) -> anyhow::Result<Child> {
        self.spawn("gateway-worker", &[])
    }

    pub fn start_worker(&mut self) -> anyhow::Result<()> {
        self.worker = Some(self.spawn("gateway-worker", &[])?);
        Ok(())
    }

    /// A dev token signed with the secret the test processes use.
    pub fn token(&self, subject: &str, email: Option<&str>) -> String {
        self.token_for(subject, email, Duration::from_secs(3600))
    }

    /// Like [`TestSystem::token`], expiring after `ttl`.
    pub fn token_for(&self, subject: &str, email: Option<&str>, ttl: Duration) -> String {
        let cfg = gateway_domain::config::Config::from_map(&self.env).expect("test config");
        gateway_domain::auth::mint_dev_token(&cfg.auth, subject, email, None, ttl).expect("mint")
    }

    /// POSTs a GraphQL operation; returns the whole JSON response (data and errors).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.api_url))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("JSON response")
    }

    /// Like `gql`, but fails the test on any error and returns `data`.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let resp = self.gql(token, query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
        resp["data"].clone()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Waits until the system has nothing left to do: no outbox row waiting for Redis, no due
    /// action due on its partner's clock, no email pending, and no job waiting, scheduled or
    /// running in any queue, three times in a row 100 ms apart (the relay moves work from
    /// Postgres to Redis between two looks). "Nothing else happened" checks wait for this
    /// instead of sleeping. Fails the test after 30 s, saying what was still busy.
    pub async fn wait_idle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut quiet = 0;
        loop {
            let busy = self.busy().await;
            quiet = if busy.is_empty() { quiet + 1 } else { 0 };
            if quiet == 3 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the system was still busy after 30 s: {busy:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What is still to be done (empty: idle), for [`TestSystem::wait_idle`].
    async fn busy(&self) -> Vec<String> {
        let mut busy = Vec::new();
        let mut conn = self.db.connect().await.expect("test database");
        let pg = gateway_domain::queues::postgres::pg_counts(&mut conn)
            .await
            .expect("Postgres counts");
        for (what, n) in pg.outbox_waiting.iter().chain(&pg.due_backlog) {
            if *n > 0 {
                busy.push(format!("{what}: {n} in Postgres"));
            }
        }
        for (status, n) in &pg.emails {
            if status == "PENDING" && *n > 0 {
                busy.push(format!("{n} emails pending"));
            }
        }
        let mut redis = crate::redis_conn().await;
        for queue in gateway_domain::jobs::QUEUES {
            let c = gateway_domain::queues::keys::counts(&mut redis, &self.queue_prefix, queue)
                .await
                .expect("queue counts");
            let n = c.pending + c.scheduled + c.running + c.failed;
            if n > 0 {
                busy.push(format!("{queue}: {n} jobs in Redis"));
            }
        }
        busy
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(resp: &Value) -> Option<&str> {
    resp["errors"][0]["extensions"]["code"].as_str()
}

impl Drop for TestSystem {
    /// Stops the processes, then drops the test database and this test's Redis keys, so a
    /// long-lived development server does not fill up with leftovers.
    fn drop(&mut self) {
        for child in [self.api.as_mut(), self.worker.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.start_kill();
        }
        for bin in ["gateway-api", "gateway-worker"] {
            let _ = std::fs::remove_file(self.log_path(bin));
        }
        let name = self.db.name.clone();
        let prefix = self.queue_prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use diesel_async::{AsyncConnection, RunQueryDsl};
                if let Ok(mut admin) =
                    diesel_async::AsyncPgConnection::establish(&crate::admin_database_url()).await
                {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                }
                let client = gateway_domain::redis_conn::RedisClient::open_url(
                    &crate::redis_url(),
                    crate::redis_cluster(),
                );
                if let Ok(client) = client {
                    if let Ok(mut c) = client.connection().await {
                        let _ = crate::clear_queues(&mut c, &prefix).await;
                    }
                }
            });
        })
        .join();
    }
}
