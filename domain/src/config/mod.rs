//! Typed configuration from environment variables, one small struct per area (`areas`).
//! `Config::from_env` reads everything, validates it, and reports *all* problems at once.
//! Every variable is documented in `.env.example` (kept in step by
//! `env_example_documents_every_variable`).

mod areas;
mod reader;

use std::collections::BTreeMap;

pub use areas::*;
use reader::Reader;

/// The HS256 secret dev and test environments use when none is set. Production refuses it.
pub const DEV_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-do-not-use-in-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub email: EmailConfig,
    pub enrollment: EnrollmentConfig,
    pub jobs: JobsConfig,
    pub billing: BillingConfig,
    pub benefits: BenefitsConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    pub fn from_map(vars: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut r = Reader::new(vars);
        // Production unless development or tests are chosen explicitly: a deployment that
        // forgets the setting must not run on the published dev secrets and test clocks.
        let env = match r.string("APP_ENV", "production").as_str() {
            "development" | "dev" => AppEnv::Development,
            "test" => AppEnv::Test,
            "production" | "prod" => AppEnv::Production,
            other => {
                r.error(format!(
                    "APP_ENV must be development, test or production, got `{other}`"
                ));
                AppEnv::Production
            }
        };
        let prod = env == AppEnv::Production;
        let config = Config {
            env,
            database: DatabaseConfig::read(&mut r),
            redis: RedisConfig::read(&mut r),
            http: HttpConfig::read(&mut r, prod),
            auth: AuthConfig::read(&mut r, prod),
            email: EmailConfig::read(&mut r, prod),
            enrollment: EnrollmentConfig::read(&mut r, prod),
            jobs: JobsConfig::read(&mut r),
            billing: BillingConfig::read(&mut r),
            benefits: BenefitsConfig::read(&mut r, prod),
        };
        if prod {
            r.errors.extend(config.production_refusals());
        }
        if r.errors.is_empty() {
            Ok(config)
        } else {
            Err(format!(
                "invalid configuration:\n  - {}",
                r.errors.join("\n  - ")
            ))
        }
    }

    /// What production refuses: anything insecure or meant for development and tests.
    fn production_refusals(&self) -> Vec<String> {
        let mut refused = Vec::new();
        if self.billing.gateway == GatewayKind::Sandbox {
            refused.push(
                "PAYMENT_GATEWAY=sandbox accepts test cards only and must not run in \
                 production: set PAYMENT_GATEWAY=stripe"
                    .into(),
            );
        }
        if let GatewayKind::Stripe(s) = &self.billing.gateway {
            if !s.api_base.starts_with("https://") {
                refused.push("STRIPE_API_BASE must be an https:// address in production".into());
            }
        }
        if self.auth.hs256_secret.is_some() {
            refused.push(
                "JWT_HS256_SECRET is for development and tests; production validates RS256 \
                 tokens against JWT_JWKS_FILE or JWT_JWKS_URL"
                    .into(),
            );
        }
        if self.auth.jwks_file.is_none() && self.auth.jwks_url.is_none() {
            refused.push("production needs JWT_JWKS_FILE or JWT_JWKS_URL".into());
        }
        if self
            .auth
            .jwks_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://"))
        {
            refused.push("JWT_JWKS_URL must be an https:// address in production".into());
        }
        if !self.http.portal_base_url.starts_with("https://") {
            refused.push(
                "PORTAL_BASE_URL must be the portal's https:// address in production (links in \
                 emails carry tokens)"
                    .into(),
            );
        }
        if let EmailTransportKind::Smtp { url } = &self.email.transport {
            if !(url.starts_with("smtps://") || url.contains("tls=required")) {
                refused.push(
                    "SMTP_URL must use TLS in production: smtps://host:465 or \
                     smtp://host:587?tls=required"
                        .into(),
                );
            }
        }
        if self.billing.crash_after_charge.is_some() {
            refused.push("FAULT_CRASH_AFTER_CHARGE is a fault switch for tests".into());
        }
        if !self.billing.gateway_delay.is_zero() {
            refused.push("FAULT_GATEWAY_DELAY_MS is a fault switch for tests".into());
        }
        if self.enrollment.test_clocks {
            refused.push("TEST_CLOCKS_ENABLED must be false in production".into());
        }
        if self.enrollment.auto_authorize {
            refused.push("AUTO_AUTHORIZE must be false in production".into());
        }
        if !matches!(self.email.transport, EmailTransportKind::Smtp { .. }) {
            refused.push("production sends email over SMTP: set EMAIL_TRANSPORT=smtp".into());
        }
        refused
    }

    pub fn is_production(&self) -> bool {
        self.env == AppEnv::Production
    }
}

/// Every variable `Config::from_map` reads, for the `.env.example` check.
pub const VARIABLES: &[&str] = &[
    "APP_ENV",
    // Read by `logs::init` before the configuration.
    "LOG_FORMAT",
    // Read by `telemetry` (trace export), with the standard OTEL_BSP_* and OTEL_EXPORTER_OTLP_*.
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_POOLER",
    "DATABASE_DIRECT_URL",
    "REDIS_URL",
    "REDIS_CLUSTER",
    "QUEUE_PREFIX",
    "API_BIND",
    "PORTAL_BASE_URL",
    "CORS_ALLOWED_ORIGINS",
    "GRAPHQL_MAX_DEPTH",
    "GRAPHQL_MAX_COMPLEXITY",
    "GRAPHQL_MAX_BATCH",
    "HTTP_MAX_BODY_BYTES",
    "HTTP_REQUEST_TIMEOUT_MS",
    "HTTP_HEADER_READ_TIMEOUT_MS",
    "GRAPHQL_INTROSPECTION",
    "GRAPHQL_MAX_ROOT_FIELDS",
    "GRAPHQL_MAX_ALIASES",
    "HTTP_MAX_CONCURRENT",
    "RATE_LIMIT_WINDOW_SECS",
    "RATE_LIMIT_CALLER",
    "RATE_LIMIT_ADDRESS",
    "RATE_LIMIT_SENSITIVE",
    "HTTP_TRUST_FORWARDED_FOR",
    "METRICS_BIND",
    "METRICS_TOKEN",
    "METRICS_CACHE_MS",
    "OPS_SESSION_TTL_SECS",
    "OPS_OIDC_ISSUER",
    "OPS_OIDC_CLIENT_ID",
    "OPS_OIDC_CLIENT_SECRET",
    "OPS_OIDC_REDIRECT_URL",
    "OPS_OIDC_SCOPES",
    "APQ_TTL_SECS",
    "GRAPHQL_TRUSTED_DOCUMENTS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_HS256_SECRET",
    "JWT_JWKS_FILE",
    "JWT_JWKS_URL",
    "JWT_LEEWAY_SECS",
    "EMAIL_TRANSPORT",
    "SMTP_URL",
    "EMAIL_FILE_DIR",
    "EMAIL_FROM",
    "EMAIL_MAX_ATTEMPTS",
    "EMAIL_RETRY_BASE_MS",
    "EMAIL_SMTP_TIMEOUT_MS",
    "EMAIL_BATCH",
    "VERIFICATION_TOKEN_TTL_SECS",
    "VERIFICATION_RESEND_INTERVAL_SECS",
    "AUTO_AUTHORIZE",
    "TEST_CLOCKS_ENABLED",
    "WORKER_CONCURRENCY",
    "RELAY_INTERVAL_MS",
    "SWEEP_INTERVAL_MS",
    "REDISPATCH_AFTER_SECS",
    "WORKER_POLL_MS",
    "RELAY_REDIS_WATERMARK",
    "JOB_RETENTION_SECS",
    "RETENTION_INTERVAL_MS",
    "WORKER_METRICS_BIND",
    "RENEWAL_BATCH",
    "PAYMENT_GATEWAY",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "FAULT_CRASH_AFTER_CHARGE",
    "FAULT_GATEWAY_DELAY_MS",
    "ORDER_SETTLE_AFTER_SECS",
    "RENEWAL_TRANSIENT_RETRY_SECS",
    "KEY_ENCRYPTION_KEY",
    "KEY_ENCRYPTION_KEYS",
    "TECHNICAL_ACTIVATION_DELAY_SECS",
    "GTM_ACTIVATION_DELAY_SECS",
    "PROVISIONING",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://x/y"),
        ("REDIS_URL", "redis://x"),
    ];

    #[test]
    fn development_defaults() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "development".into());
        let c = Config::from_map(&vars).unwrap();
        assert_eq!(c.env, AppEnv::Development);
        assert_eq!(c.auth.hs256_secret.as_deref(), Some(DEV_JWT_SECRET));
        assert!(matches!(c.email.transport, EmailTransportKind::File { .. }));
        assert!(c.enrollment.test_clocks);
    }

    #[test]
    fn production_is_the_default_and_fails_closed() {
        // Nothing but the addresses: production, with none of the development conveniences.
        let err = Config::from_map(&map(BASE)).unwrap_err();
        for needle in [
            "JWT_ISSUER is required",
            "JWT_AUDIENCE is required",
            "JWT_JWKS_FILE or JWT_JWKS_URL",
            "SMTP_URL is required",
            "KEY_ENCRYPTION_KEYS (or KEY_ENCRYPTION_KEY) is required",
            "PORTAL_BASE_URL must be the portal's https:// address",
            "PAYMENT_GATEWAY=sandbox",
        ] {
            assert!(err.contains(needle), "missing `{needle}` in {err}");
        }
        let mut vars = map(BASE);
        vars.insert("JWT_JWKS_URL".into(), "http://login.example/jwks".into());
        vars.insert("SMTP_URL".into(), "smtp://mail.example:25".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("JWT_JWKS_URL must be an https://"), "{err}");
        assert!(err.contains("SMTP_URL must use TLS"), "{err}");
        assert!(
            !err.contains("JWT_HS256_SECRET"),
            "no dev secret is assumed: {err}"
        );
    }

    #[test]
    fn the_consoles_openid_provider_is_complete_and_https_in_production() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "development".into());
        assert!(Config::from_map(&vars).unwrap().http.ops_oidc.is_none());
        vars.insert("OPS_OIDC_ISSUER".into(), "http://idp.local/".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("OPS_OIDC_CLIENT_ID is required"), "{err}");
        assert!(err.contains("OPS_OIDC_REDIRECT_URL is required"), "{err}");
        vars.insert("OPS_OIDC_CLIENT_ID".into(), "console".into());
        vars.insert(
            "OPS_OIDC_REDIRECT_URL".into(),
            "http://localhost:8080/ops/oidc/callback".into(),
        );
        let oidc = Config::from_map(&vars).unwrap().http.ops_oidc.unwrap();
        assert_eq!(oidc.issuer, "http://idp.local");
        assert_eq!(oidc.scopes, "openid");
        vars.insert("APP_ENV".into(), "production".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(
            err.contains("production requires https for OPS_OIDC_ISSUER"),
            "{err}"
        );
    }

    #[test]
    fn email_links_point_at_the_portal_and_the_old_variable_is_refused_by_name() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "development".into());
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(
            config.http.portal_link("/sign-in"),
            "http://localhost:3000/sign-in"
        );
        vars.insert("PORTAL_BASE_URL".into(), "https://portal.example/".into());
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(
            config.http.portal_link("/verify-email?token=t"),
            "https://portal.example/verify-email?token=t"
        );
        vars.insert("PORTAL_BASE_URL".into(), "portal.example".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("PORTAL_BASE_URL must be an absolute"), "{err}");
        vars.remove("PORTAL_BASE_URL");
        vars.insert("PUBLIC_BASE_URL".into(), "http://localhost:8080".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(
            err.contains("PUBLIC_BASE_URL was renamed PORTAL_BASE_URL"),
            "{err}"
        );
    }

    #[test]
    fn a_transaction_mode_pooler_needs_a_direct_url_for_listen_and_migrations() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "development".into());
        let c = Config::from_map(&vars).unwrap();
        assert_eq!(c.database.pooler, Pooler::None);
        assert_eq!(c.database.direct_url, "postgres://x/y");
        vars.insert("DATABASE_POOLER".into(), "transaction".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("DATABASE_DIRECT_URL is required"), "{err}");
        vars.insert("DATABASE_DIRECT_URL".into(), "postgres://pg/y".into());
        let c = Config::from_map(&vars).unwrap();
        assert_eq!(c.database.pooler, Pooler::Transaction);
        assert_eq!(
            (c.database.url.as_str(), c.database.direct_url.as_str()),
            ("postgres://x/y", "postgres://pg/y")
        );
        vars.insert("DATABASE_POOLER".into(), "statement".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(
            err.contains("DATABASE_POOLER must be `none` or `transaction`"),
            "{err}"
        );
    }

    #[test]
    fn introspection_is_off_in_production_unless_enabled() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "development".into());
        assert!(Config::from_map(&vars).unwrap().http.introspection);
        vars.insert("GRAPHQL_INTROSPECTION".into(), "false".into());
        assert!(!Config::from_map(&vars).unwrap().http.introspection);
        vars.insert("APP_ENV".into(), "production".into());
        vars.remove("GRAPHQL_INTROSPECTION");
        let mut r = reader::Reader::new(&vars);
        assert!(!HttpConfig::read(&mut r, true).introspection);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = Config::from_map(&map(&[
            ("GRAPHQL_MAX_DEPTH", "deep"),
            ("EMAIL_TRANSPORT", "pigeon"),
        ]))
        .unwrap_err();
        for needle in [
            "DATABASE_URL is required",
            "REDIS_URL is required",
            "GRAPHQL_MAX_DEPTH must be a number",
            "EMAIL_TRANSPORT must be",
        ] {
            assert!(err.contains(needle), "missing `{needle}` in {err}");
        }
    }

    #[test]
    fn production_refuses_unsafe_settings() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "production".into());
        vars.insert("JWT_HS256_SECRET".into(), DEV_JWT_SECRET.into());
        vars.insert("EMAIL_TRANSPORT".into(), "file".into());
        vars.insert("TEST_CLOCKS_ENABLED".into(), "true".into());
        let err = Config::from_map(&vars).unwrap_err();
        for needle in [
            "JWT_HS256_SECRET is for development",
            "JWT_JWKS_FILE or JWT_JWKS_URL",
            "TEST_CLOCKS_ENABLED",
            "EMAIL_TRANSPORT=smtp",
            "KEY_ENCRYPTION_KEYS (or KEY_ENCRYPTION_KEY) is required",
        ] {
            assert!(err.contains(needle), "missing `{needle}` in {err}");
        }
    }

    #[test]
    fn production_refuses_the_sandbox_gateway_and_starts_with_stripe() {
        let mut vars = map(BASE);
        vars.insert("APP_ENV".into(), "production".into());
        vars.insert("JWT_JWKS_URL".into(), "https://login.example/jwks".into());
        vars.insert("JWT_ISSUER".into(), "https://login.example/".into());
        vars.insert("JWT_AUDIENCE".into(), "api://partner-benefits".into());
        vars.insert("PORTAL_BASE_URL".into(), "https://partners.example".into());
        vars.insert(
            "SMTP_URL".into(),
            "smtp://mail.example:587?tls=required".into(),
        );
        // Every other setting is accepted; what is left is the missing live payment gateway.
        vars.insert(
            "KEY_ENCRYPTION_KEY".into(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        );
        let err = Config::from_map(&vars).unwrap_err();
        assert_eq!(err.lines().count(), 2, "{err}");
        assert!(err.contains("PAYMENT_GATEWAY=sandbox"), "{err}");
        // Stripe without its settings: every missing one is named at once.
        vars.insert("PAYMENT_GATEWAY".into(), "stripe".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("STRIPE_SECRET_KEY is required"), "{err}");
        assert!(err.contains("STRIPE_WEBHOOK_SECRET is required"), "{err}");
        // With them, production starts.
        vars.insert("STRIPE_SECRET_KEY".into(), "sk_live_not_a_real_key".into());
        vars.insert(
            "STRIPE_WEBHOOK_SECRET".into(),
            "whsec_not_a_real_secret".into(),
        );
        let config = Config::from_map(&vars).expect("production with Stripe");
        assert!(format!("{config:?}").contains("[redacted]"));
        assert!(!format!("{config:?}").contains("sk_live_not_a_real_key"));
        vars.insert("STRIPE_API_BASE".into(), "http://localhost:8420".into());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.contains("STRIPE_API_BASE must be an https://"), "{err}");
    }

    #[test]
    fn env_example_documents_every_variable() {
        let example = include_str!("../../../.env.example");
        for var in VARIABLES {
            assert!(
                example.contains(&format!("{var}=")),
                ".env.example does not document {var}"
            );
        }
    }
}
