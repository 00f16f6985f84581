//! The configuration of each area, one struct per area, with the environment variables it
//! reads and how they are checked.

use std::time::Duration;

use super::reader::Reader;

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// DATABASE_URL: what the pools connect to (a pooler such as PgBouncer, or Postgres).
    pub url: String,
    /// DATABASE_POOL_SIZE
    pub pool_size: usize,
    /// DATABASE_POOLER: `none` (DATABASE_URL is Postgres itself, or a pooler in session mode)
    /// or `transaction` (a pooler in transaction mode, such as PgBouncer before 1.21: no
    /// statement kept prepared, no session state).
    pub pooler: Pooler,
    /// DATABASE_DIRECT_URL: Postgres itself, for what needs a session of its own: LISTEN (the
    /// api's live events), migrations and their advisory lock. Defaults to DATABASE_URL;
    /// required with DATABASE_POOLER=transaction.
    pub direct_url: String,
}

/// What stands between the pools and Postgres (DATABASE_POOLER).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing, or a pooler in session mode: statements stay prepared per connection.
    None,
    /// A pooler in transaction mode: each statement goes out unnamed in one message.
    Transaction,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// REDIS_URL (with REDIS_CLUSTER, one or more of the cluster's nodes, comma-separated)
    pub url: String,
    /// REDIS_CLUSTER: Redis is a Redis Cluster (the async cluster client; every queue's keys
    /// share one hash slot).
    pub cluster: bool,
    /// QUEUE_PREFIX: prepended to every queue name, so environments (and tests) sharing one
    /// Redis never see each other's jobs.
    pub queue_prefix: String,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// API_BIND
    pub bind: String,
    /// PORTAL_BASE_URL: where the partners' portal (the SPA) lives; every link in an email
    /// points there (`/verify-email`, `/sign-in`, …), never at this api.
    pub portal_base_url: String,
    /// CORS_ALLOWED_ORIGINS (comma-separated; empty = no cross-origin access)
    pub cors_allowed_origins: Vec<String>,
    /// GRAPHQL_MAX_DEPTH
    pub max_depth: usize,
    /// GRAPHQL_MAX_COMPLEXITY
    pub max_complexity: usize,
    /// GRAPHQL_MAX_BATCH
    pub max_batch: usize,
    /// HTTP_MAX_BODY_BYTES
    pub max_body_bytes: usize,
    /// HTTP_REQUEST_TIMEOUT_MS: the whole request (body, authentication, execution)
    pub request_timeout: Duration,
    /// HTTP_HEADER_READ_TIMEOUT_MS: how long a client may take to send a request's head
    /// (default 10000)
    pub header_read_timeout: Duration,
    /// GRAPHQL_INTROSPECTION: `__schema` / `__type` answered (default: on outside production,
    /// off in production)
    pub introspection: bool,
    /// GRAPHQL_MAX_ROOT_FIELDS: root fields one operation may select (each may take a pool
    /// connection; default 20)
    pub max_root_fields: usize,
    /// GRAPHQL_MAX_ALIASES: aliased fields one document may hold (default 50)
    pub max_aliases: usize,
    /// HTTP_MAX_CONCURRENT: GraphQL requests in flight at once; beyond, 503 with Retry-After
    /// (default 512)
    pub max_concurrent: usize,
    /// RATE_LIMIT_WINDOW_SECS: the window the rate limits count in (default 60)
    pub rate_limit_window_secs: u64,
    /// RATE_LIMIT_CALLER: GraphQL requests per window of one signed-in caller (default 1200;
    /// 0 = unlimited)
    pub rate_limit_caller: u64,
    /// RATE_LIMIT_ADDRESS: GraphQL requests per window without a caller, per client address
    /// (default 300; 0 = unlimited)
    pub rate_limit_address: u64,
    /// RATE_LIMIT_SENSITIVE: enrollPartner, addUser, addPaymentMethod and
    /// verifyPrimaryContactEmail per window, per caller or (without one) per address
    /// (default 10; 0 = unlimited)
    pub rate_limit_sensitive: u64,
    /// METRICS_BIND: where the api serves `/metrics` on a listener of its own (default
    /// `127.0.0.1:9464`, loopback; empty: no such listener)
    pub metrics_bind: Option<String>,
    /// METRICS_TOKEN: when set, `/metrics` also answers on API_BIND, to
    /// `Authorization: Bearer <METRICS_TOKEN>` only (at least 32 characters)
    pub metrics_token: Option<String>,
    /// METRICS_CACHE_MS: how long the gauges read from Postgres and Redis are reused between
    /// scrapes (default 5000)
    pub metrics_cache: Duration,
    /// OPS_SESSION_TTL_SECS: how long an operators' console session lasts (default 3600)
    pub ops_session_ttl_secs: i64,
    /// APQ_TTL_SECS: how long an automatic persisted query is kept in Redis after it was last
    /// registered (default 86400)
    pub apq_ttl_secs: u64,
    /// GRAPHQL_TRUSTED_DOCUMENTS: a JSON manifest `{sha256: document}`; when set, only those
    /// documents run (by hash or text)
    pub trusted_documents: Option<String>,
    /// OPS_OIDC_ISSUER, OPS_OIDC_CLIENT_ID, OPS_OIDC_REDIRECT_URL (+ optional
    /// OPS_OIDC_CLIENT_SECRET, OPS_OIDC_SCOPES): where set, the console signs operators in
    /// through this OpenID Connect provider (authorization code + PKCE).
    pub ops_oidc: Option<OpsOidc>,
    /// HTTP_TRUST_FORWARDED_FOR: the client address is the last of X-Forwarded-For (set it
    /// only behind a proxy that appends it; default off: the peer address)
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// JWT_ISSUER
    pub issuer: String,
    /// JWT_AUDIENCE
    pub audience: String,
    /// JWT_HS256_SECRET (development and tests only)
    pub hs256_secret: Option<String>,
    /// JWT_JWKS_FILE
    pub jwks_file: Option<String>,
    /// JWT_JWKS_URL
    pub jwks_url: Option<String>,
    /// JWT_LEEWAY_SECS: clock skew allowed on `exp` and `nbf` (default 5, at most 60)
    pub leeway_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTransportKind {
    Smtp { url: String },
    File { dir: String },
    Memory,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// EMAIL_TRANSPORT = smtp | file | memory, with SMTP_URL or EMAIL_FILE_DIR
    pub transport: EmailTransportKind,
    /// EMAIL_FROM
    pub from: String,
    /// EMAIL_MAX_ATTEMPTS
    pub max_attempts: i32,
    /// EMAIL_RETRY_BASE_MS: first retry delay, doubled per attempt
    pub retry_base: Duration,
    /// EMAIL_SMTP_TIMEOUT_MS: an SMTP server silent this long fails the attempt
    pub smtp_timeout: Duration,
    /// EMAIL_BATCH: emails relayed together travel as one job of up to this many, claimed in
    /// one statement, sent a few at a time and each marked sent on its own (1: one job per
    /// email)
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct EnrollmentConfig {
    /// VERIFICATION_TOKEN_TTL_SECS
    pub verification_ttl: Duration,
    /// VERIFICATION_RESEND_INTERVAL_SECS
    pub resend_interval: Duration,
    /// AUTO_AUTHORIZE: authorize a partner as soon as its email is verified (dev/test only)
    pub auto_authorize: bool,
    /// TEST_CLOCKS_ENABLED (refused in production)
    pub test_clocks: bool,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// WORKER_CONCURRENCY
    pub concurrency: usize,
    /// RELAY_INTERVAL_MS: how often the outbox relay looks for due rows
    pub relay_interval: Duration,
    /// SWEEP_INTERVAL_MS: how often due work is re-derived from Postgres
    pub sweep_interval: Duration,
    /// REDISPATCH_AFTER_SECS: due work still not done this long after its due time is
    /// dispatched again (Redis lost it, or a worker died holding it)
    pub redispatch_after: Duration,
    /// WORKER_POLL_MS: how often an idle worker asks Redis for jobs
    pub poll_interval: Duration,
    /// RELAY_REDIS_WATERMARK: the most jobs a queue holds in Redis (waiting); the rest wait in
    /// Postgres. Must stay well below apalis-redis' ~8,000 due-jobs limit.
    pub redis_watermark: usize,
    /// JOB_RETENTION_SECS: finished jobs are removed from Redis, and relayed outbox rows from
    /// Postgres, this long after they finish
    pub retention: Duration,
    /// RETENTION_INTERVAL_MS: how often the worker trims finished jobs
    pub retention_interval: Duration,
    /// WORKER_METRICS_BIND: where the worker serves its job metrics (empty: not served)
    pub metrics_bind: Option<String>,
    /// RENEWAL_BATCH: renewal charges due together travel as one job of up to this many,
    /// charged and booked in one transaction (1: one job per charge)
    pub renewal_batch: usize,
}

#[derive(Clone, PartialEq, Eq)]
pub enum GatewayKind {
    /// The local sandbox gateway with test cards (domain/src/providers/payments.rs).
    Sandbox,
    /// Stripe (domain/src/providers/stripe.rs).
    Stripe(StripeConfig),
}

/// PAYMENT_GATEWAY=stripe: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_API_BASE.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// STRIPE_API_BASE: Stripe's API address (default https://api.stripe.com; tests point it at
    /// localstripe).
    pub api_base: String,
    /// STRIPE_SECRET_KEY (sk_live_… / sk_test_…; rk_… restricted keys work too).
    pub secret_key: String,
    /// STRIPE_WEBHOOK_SECRET (whsec_…): verifies `Stripe-Signature` on webhooks.
    pub webhook_secret: String,
}

impl std::fmt::Debug for GatewayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayKind::Sandbox => f.write_str("Sandbox"),
            GatewayKind::Stripe(s) => f
                .debug_struct("Stripe")
                .field("api_base", &s.api_base)
                .field("secret_key", &"[redacted]")
                .field("webhook_secret", &"[redacted]")
                .finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// PAYMENT_GATEWAY = sandbox (test cards; refused in production) | stripe
    pub gateway: GatewayKind,
    /// ORDER_SETTLE_AFTER_SECS: a card order still PROCESSING this long after it was placed
    /// (its request died mid-way) is settled from the gateway's records by a job
    pub settle_after: Duration,
    /// RENEWAL_TRANSIENT_RETRY_SECS: after a transient gateway failure, a renewal charge is
    /// tried again this much later (partner time), up to 3 times before it counts as declined
    pub transient_retry: Duration,
    /// FAULT_CRASH_AFTER_CHARGE = purchase | renewal: the process that charged (the api for a
    /// purchase or `renewSubscription`, the worker for an automatic renewal) exits right after
    /// the gateway accepted a charge, before booking it. A fault switch for the crash tests;
    /// refused in production.
    pub crash_after_charge: Option<CrashPoint>,
    /// FAULT_GATEWAY_DELAY_MS: the sandbox gateway stalls this long before each call (a slow
    /// gateway, for the tests that prove nothing waits on it); 0 (the default) in normal use,
    /// refused in production.
    pub gateway_delay: Duration,
}

/// Where [`BillingConfig::crash_after_charge`] makes the process exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    Purchase,
    Renewal,
}

impl BillingConfig {
    /// The fault switch: exits the process (status 70) when it is set for `point`. Called
    /// right after a successful charge; never set in production.
    pub fn crash_point(&self, point: CrashPoint) {
        if self.crash_after_charge == Some(point) {
            tracing::error!(
                ?point,
                "FAULT_CRASH_AFTER_CHARGE: exiting after the charge, before booking it"
            );
            std::process::exit(70);
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenefitsConfig {
    /// KEY_ENCRYPTION_KEYS (`id:base64,…`, the first encrypts) and KEY_ENCRYPTION_KEY (one
    /// key, id `default`): the keys that encrypt product keys at rest (AES-256-GCM). Outside
    /// production a fixed development key is used when neither is set; production requires one.
    pub keyring: Keyring,
    /// TECHNICAL_ACTIVATION_DELAY_SECS: how long a technical benefit activation takes
    pub technical_activation_delay: Duration,
    /// GTM_ACTIVATION_DELAY_SECS: how long a Go-To-Market offer activation takes
    pub gtm_activation_delay: Duration,
    /// PROVISIONING = simulated | simulated-failing (the provider of Access and Contract IDs;
    /// `simulated-failing` makes every activation fail, for tests)
    pub provisioning_fails: bool,
}

/// The development key for product keys at rest. Production refuses to run without its own.
pub const DEV_KEY_ENCRYPTION_KEY: [u8; 32] = *b"dev-only-product-key-encryption!";

/// The key id KEY_ENCRYPTION_KEY (and the development key) takes in the ring; product keys
/// stored before key ids existed carry it.
pub const DEFAULT_KEY_ID: &str = "default";

/// Key-encryption keys by id: the first encrypts, every one decrypts what it encrypted, until
/// `gateway-api rotate-keys` has moved every product key to the first. Its `Debug` shows ids
/// only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, [u8; 32])>,
}

impl Keyring {
    /// A ring of one key.
    pub fn single(id: &str, key: [u8; 32]) -> Self {
        Keyring {
            keys: vec![(id.to_owned(), key)],
        }
    }

    /// The key that encrypts, and its id.
    pub fn current(&self) -> (&str, &[u8; 32]) {
        let (id, key) = &self.keys[0];
        (id, key)
    }

    pub fn get(&self, id: &str) -> Option<&[u8; 32]> {
        self.keys.iter().find(|(i, _)| i == id).map(|(_, k)| k)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(i, _)| i.as_str()).collect()
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

fn key_bytes(b64: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim().as_bytes())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
}

impl Keyring {
    fn read(r: &mut Reader, prod: bool) -> Keyring {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for entry in r
            .string("KEY_ENCRYPTION_KEYS", "")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let Some((id, b64)) = entry.split_once(':') else {
                r.error("KEY_ENCRYPTION_KEYS lists `id:base64` entries, comma-separated".into());
                continue;
            };
            let id = id.trim();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                r.error(format!(
                    "KEY_ENCRYPTION_KEYS: key id `{id}` must be 1 to 32 letters, digits, `-` or `_`"
                ));
                continue;
            }
            let Some(key) = key_bytes(b64) else {
                r.error(format!(
                    "KEY_ENCRYPTION_KEYS: key `{id}` must be base64 of exactly 32 bytes"
                ));
                continue;
            };
            if keys.iter().any(|(i, _)| i == id) {
                r.error(format!("KEY_ENCRYPTION_KEYS: key id `{id}` appears twice"));
                continue;
            }
            keys.push((id.to_owned(), key));
        }
        if let Some(b64) = r.opt("KEY_ENCRYPTION_KEY") {
            match key_bytes(&b64) {
                Some(k) if keys.iter().any(|(i, _)| i == DEFAULT_KEY_ID) => {
                    let _ = k;
                    r.error(format!(
                        "KEY_ENCRYPTION_KEY is the key `{DEFAULT_KEY_ID}`, which KEY_ENCRYPTION_KEYS names too"
                    ));
                }
                Some(k) => keys.push((DEFAULT_KEY_ID.to_owned(), k)),
                None => r.error("KEY_ENCRYPTION_KEY must be base64 of exactly 32 bytes".into()),
            }
        }
        if keys.is_empty() {
            if prod {
                r.error(
                    "KEY_ENCRYPTION_KEYS (or KEY_ENCRYPTION_KEY) is required in production (base64 of 32 random bytes)"
                        .into(),
                );
            }
            keys.push((DEFAULT_KEY_ID.to_owned(), DEV_KEY_ENCRYPTION_KEY));
        }
        if prod && keys.iter().any(|(_, k)| *k == DEV_KEY_ENCRYPTION_KEY) {
            r.error("the development key-encryption key is public; production refuses it".into());
        }
        Keyring { keys }
    }
}

impl DatabaseConfig {
    pub(super) fn read(r: &mut Reader) -> Self {
        let url = r.required("DATABASE_URL", "postgres://user@host:5432/db");
        let pooler = match r.string("DATABASE_POOLER", "none").as_str() {
            "none" => Pooler::None,
            "transaction" => Pooler::Transaction,
            other => {
                r.error(format!(
                    "DATABASE_POOLER must be `none` or `transaction`, got `{other}`"
                ));
                Pooler::None
            }
        };
        let direct_url = match r.opt("DATABASE_DIRECT_URL") {
            Some(direct) => direct,
            None => {
                if pooler == Pooler::Transaction {
                    r.error(
                        "DATABASE_DIRECT_URL is required with DATABASE_POOLER=transaction: \
                         LISTEN and migrations need a session of their own, which a pooler in \
                         transaction mode does not keep"
                            .into(),
                    );
                }
                url.clone()
            }
        };
        DatabaseConfig {
            url,
            pool_size: r.parse("DATABASE_POOL_SIZE", 10usize, 1),
            pooler,
            direct_url,
        }
    }
}

impl RedisConfig {
    pub(super) fn read(r: &mut Reader) -> Self {
        let redis = RedisConfig {
            url: r.required("REDIS_URL", "redis://127.0.0.1:6379"),
            cluster: r.flag("REDIS_CLUSTER", false),
            queue_prefix: r.string("QUEUE_PREFIX", "pbg"),
        };
        if !redis
            .queue_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            r.error("QUEUE_PREFIX may contain only letters, digits, `_` and `-`".into());
        }
        redis
    }
}

impl HttpConfig {
    /// An absolute link to a page of the portal, for emails: `path` starts with `/`.
    pub fn portal_link(&self, path: &str) -> String {
        format!("{}{path}", self.portal_base_url)
    }

    pub(super) fn read(r: &mut Reader, prod: bool) -> Self {
        let http = HttpConfig {
            bind: r.string("API_BIND", "127.0.0.1:8080"),
            portal_base_url: r
                .string("PORTAL_BASE_URL", "http://localhost:3000")
                .trim_end_matches('/')
                .to_owned(),
            cors_allowed_origins: r
                .string("CORS_ALLOWED_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            max_depth: r.parse("GRAPHQL_MAX_DEPTH", 12usize, 2),
            max_complexity: r.parse("GRAPHQL_MAX_COMPLEXITY", 2000usize, 10),
            max_batch: r.parse("GRAPHQL_MAX_BATCH", 10usize, 1),
            max_body_bytes: r.parse("HTTP_MAX_BODY_BYTES", 64 * 1024usize, 1024),
            request_timeout: r.millis("HTTP_REQUEST_TIMEOUT_MS", 15_000),
            header_read_timeout: r.millis("HTTP_HEADER_READ_TIMEOUT_MS", 10_000),
            introspection: r.flag("GRAPHQL_INTROSPECTION", !prod),
            max_root_fields: r.parse("GRAPHQL_MAX_ROOT_FIELDS", 20usize, 1),
            max_aliases: r.parse("GRAPHQL_MAX_ALIASES", 50usize, 0),
            max_concurrent: r.parse("HTTP_MAX_CONCURRENT", 512usize, 1),
            rate_limit_window_secs: r.parse("RATE_LIMIT_WINDOW_SECS", 60u64, 1),
            rate_limit_caller: r.parse("RATE_LIMIT_CALLER", 1200u64, 0),
            rate_limit_address: r.parse("RATE_LIMIT_ADDRESS", 300u64, 0),
            rate_limit_sensitive: r.parse("RATE_LIMIT_SENSITIVE", 10u64, 0),
            trust_forwarded_for: r.flag("HTTP_TRUST_FORWARDED_FOR", false),
            metrics_bind: Some(r.string("METRICS_BIND", "127.0.0.1:9464"))
                .filter(|b| !b.trim().is_empty()),
            metrics_token: r.opt("METRICS_TOKEN").filter(|t| !t.is_empty()),
            metrics_cache: r.millis("METRICS_CACHE_MS", 5_000),
            ops_session_ttl_secs: r.parse("OPS_SESSION_TTL_SECS", 3600i64, 60),
            ops_oidc: OpsOidc::read(r, prod),
            apq_ttl_secs: r.parse("APQ_TTL_SECS", 86_400u64, 60),
            trusted_documents: r
                .opt("GRAPHQL_TRUSTED_DOCUMENTS")
                .filter(|p| !p.trim().is_empty()),
        };
        if http.metrics_token.as_ref().is_some_and(|t| t.len() < 32) {
            r.error("METRICS_TOKEN must be at least 32 characters".into());
        }
        if r.opt("PUBLIC_BASE_URL").is_some() {
            r.error(
                "PUBLIC_BASE_URL was renamed PORTAL_BASE_URL: email links point at the portal, \
                 not at this api; rename the variable"
                    .into(),
            );
        }
        if !(http.portal_base_url.starts_with("https://")
            || http.portal_base_url.starts_with("http://"))
        {
            r.error(format!(
                "PORTAL_BASE_URL must be an absolute http(s):// address, got `{}`",
                http.portal_base_url
            ));
        }
        if http.cors_allowed_origins.iter().any(|o| o == "*") {
            r.error("CORS_ALLOWED_ORIGINS must list origins; `*` is not allowed".into());
        }
        http
    }
}

impl AuthConfig {
    pub(super) fn read(r: &mut Reader, prod: bool) -> Self {
        let hs256_secret = r
            .opt("JWT_HS256_SECRET")
            .or_else(|| (!prod).then(|| super::DEV_JWT_SECRET.to_owned()));
        let auth = AuthConfig {
            // Production names its identity provider explicitly; the dev defaults are refused.
            issuer: if prod {
                r.required(
                    "JWT_ISSUER",
                    "the `iss` your identity provider puts in tokens",
                )
            } else {
                r.string("JWT_ISSUER", "pbg-dev")
            },
            audience: if prod {
                r.required("JWT_AUDIENCE", "the `aud` tokens for this API carry")
            } else {
                r.string("JWT_AUDIENCE", "pbg-api")
            },
            hs256_secret,
            jwks_file: r.opt("JWT_JWKS_FILE"),
            jwks_url: r.opt("JWT_JWKS_URL"),
            leeway_secs: r.parse("JWT_LEEWAY_SECS", 5u64, 0),
        };
        if auth.leeway_secs > 60 {
            r.error("JWT_LEEWAY_SECS must be at most 60".into());
        }
        if auth.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            r.error("JWT_HS256_SECRET must be at least 32 characters".into());
        }
        auth
    }
}

impl EmailConfig {
    pub(super) fn read(r: &mut Reader, prod: bool) -> Self {
        let transport = match r
            .string("EMAIL_TRANSPORT", if prod { "smtp" } else { "file" })
            .as_str()
        {
            "smtp" => EmailTransportKind::Smtp {
                url: r.required("SMTP_URL", "smtp://host:25 or smtps://user:pass@host:465"),
            },
            "file" => EmailTransportKind::File {
                dir: r.string("EMAIL_FILE_DIR", ".local/mail"),
            },
            "memory" => EmailTransportKind::Memory,
            other => {
                r.error(format!(
                    "EMAIL_TRANSPORT must be smtp, file or memory, got `{other}`"
                ));
                EmailTransportKind::Memory
            }
        };
        let email = EmailConfig {
            transport,
            from: r.string("EMAIL_FROM", "Partner Network <no-reply@partners.example>"),
            max_attempts: r.parse("EMAIL_MAX_ATTEMPTS", 5i32, 1),
            retry_base: r.millis("EMAIL_RETRY_BASE_MS", 30_000),
            smtp_timeout: r.millis("EMAIL_SMTP_TIMEOUT_MS", 10_000),
            batch: r.parse("EMAIL_BATCH", 25usize, 1),
        };
        if email.batch > 500 {
            r.error(format!(
                "EMAIL_BATCH must be at most 500 (one claim per batch), got {}",
                email.batch
            ));
        }
        email
    }
}

impl EnrollmentConfig {
    pub(super) fn read(r: &mut Reader, prod: bool) -> Self {
        EnrollmentConfig {
            verification_ttl: r.secs("VERIFICATION_TOKEN_TTL_SECS", 3 * 24 * 3600),
            resend_interval: r.secs("VERIFICATION_RESEND_INTERVAL_SECS", 60),
            auto_authorize: r.flag("AUTO_AUTHORIZE", false),
            test_clocks: r.flag("TEST_CLOCKS_ENABLED", !prod),
        }
    }
}

impl JobsConfig {
    pub(super) fn read(r: &mut Reader) -> Self {
        let jobs = JobsConfig {
            concurrency: r.parse("WORKER_CONCURRENCY", 8usize, 1),
            relay_interval: r.millis("RELAY_INTERVAL_MS", 200),
            sweep_interval: r.millis("SWEEP_INTERVAL_MS", 10_000),
            redispatch_after: r.secs("REDISPATCH_AFTER_SECS", 120),
            poll_interval: r.millis("WORKER_POLL_MS", 250),
            redis_watermark: r.parse("RELAY_REDIS_WATERMARK", 2000usize, 10),
            retention: r.secs("JOB_RETENTION_SECS", 3600),
            retention_interval: r.millis("RETENTION_INTERVAL_MS", 10_000),
            metrics_bind: r.opt("WORKER_METRICS_BIND"),
            renewal_batch: r.parse("RENEWAL_BATCH", 100usize, 1),
        };
        if jobs.renewal_batch > 1000 {
            r.error(format!(
                "RENEWAL_BATCH must be at most 1000 (one transaction per batch), got {}",
                jobs.renewal_batch
            ));
        }
        if jobs.redis_watermark > 7000 {
            r.error(
                "RELAY_REDIS_WATERMARK must be at most 7000 (apalis-redis stops near 8,000 due jobs)"
                    .into(),
            );
        }
        jobs
    }
}

impl BillingConfig {
    pub(super) fn read(r: &mut Reader) -> Self {
        let gateway = match r.string("PAYMENT_GATEWAY", "sandbox").as_str() {
            "sandbox" => GatewayKind::Sandbox,
            "stripe" => GatewayKind::Stripe(StripeConfig {
                api_base: r.string("STRIPE_API_BASE", "https://api.stripe.com"),
                secret_key: r.required("STRIPE_SECRET_KEY", "Stripe's secret API key, sk_…"),
                webhook_secret: r.required(
                    "STRIPE_WEBHOOK_SECRET",
                    "the signing secret of the webhook endpoint, whsec_…",
                ),
            }),
            other => {
                r.error(format!(
                    "PAYMENT_GATEWAY must be sandbox or stripe, got `{other}`"
                ));
                GatewayKind::Sandbox
            }
        };
        BillingConfig {
            gateway,
            settle_after: r.secs("ORDER_SETTLE_AFTER_SECS", 120),
            transient_retry: r.secs("RENEWAL_TRANSIENT_RETRY_SECS", 600),
            gateway_delay: r.millis("FAULT_GATEWAY_DELAY_MS", 0),
            crash_after_charge: match r.opt("FAULT_CRASH_AFTER_CHARGE").as_deref() {
                None | Some("") => None,
                Some("purchase") => Some(CrashPoint::Purchase),
                Some("renewal") => Some(CrashPoint::Renewal),
                Some(other) => {
                    r.error(format!(
                        "FAULT_CRASH_AFTER_CHARGE must be purchase or renewal, got `{other}`"
                    ));
                    None
                }
            },
        }
    }
}

impl BenefitsConfig {
    pub(super) fn read(r: &mut Reader, prod: bool) -> Self {
        let keyring = Keyring::read(r, prod);
        let provisioning_fails = match r.string("PROVISIONING", "simulated").as_str() {
            "simulated" => false,
            "simulated-failing" => true,
            other => {
                r.error(format!(
                    "PROVISIONING must be simulated or simulated-failing, got `{other}`"
                ));
                false
            }
        };
        BenefitsConfig {
            keyring,
            technical_activation_delay: r.secs("TECHNICAL_ACTIVATION_DELAY_SECS", 2 * 24 * 3600),
            gtm_activation_delay: r.secs("GTM_ACTIVATION_DELAY_SECS", 3 * 24 * 3600),
            provisioning_fails,
        }
    }
}

/// The operators' console's OpenID Connect provider (authorization code flow with PKCE S256).
/// The provider's access token is a bearer token for this API (the issuer, audience and JWKS
/// of `JWT_*`); the console exchanges it for a session as it does a pasted token.
#[derive(Debug, Clone)]
pub struct OpsOidc {
    /// OPS_OIDC_ISSUER: the provider; its discovery document is
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// OPS_OIDC_CLIENT_ID
    pub client_id: String,
    /// OPS_OIDC_CLIENT_SECRET: for confidential clients (optional; PKCE protects the code).
    pub client_secret: Option<String>,
    /// OPS_OIDC_REDIRECT_URL: this api's `/ops/oidc/callback` as the browser reaches it.
    pub redirect_url: String,
    /// OPS_OIDC_SCOPES (default `openid`)
    pub scopes: String,
}

impl OpsOidc {
    fn read(r: &mut Reader, prod: bool) -> Option<Self> {
        let issuer = r.opt("OPS_OIDC_ISSUER").filter(|s| !s.trim().is_empty())?;
        let oidc = OpsOidc {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: r.required(
                "OPS_OIDC_CLIENT_ID",
                "the console's client id at the provider",
            ),
            client_secret: r.opt("OPS_OIDC_CLIENT_SECRET").filter(|s| !s.is_empty()),
            redirect_url: r.required(
                "OPS_OIDC_REDIRECT_URL",
                "https://<api host>/ops/oidc/callback",
            ),
            scopes: r.string("OPS_OIDC_SCOPES", "openid"),
        };
        if !oidc.redirect_url.ends_with("/ops/oidc/callback") {
            r.error("OPS_OIDC_REDIRECT_URL must end with /ops/oidc/callback".into());
        }
        if prod
            && !(oidc.issuer.starts_with("https://") && oidc.redirect_url.starts_with("https://"))
        {
            r.error(
                "production requires https for OPS_OIDC_ISSUER and OPS_OIDC_REDIRECT_URL".into(),
            );
        }
        Some(oidc)
    }
}
