//! `gateway-api`: serve the GraphQL api, migrate, seed, mint dev tokens, print the SDL.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use gateway_domain::config::Config;

#[derive(Parser)]
#[command(name = "gateway-api", about = "Partner benefits gateway: GraphQL api")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default). Migrations run first unless --no-migrate.
    Serve {
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Apply migrations, then seed the catalog and the demo operator (idempotent).
    Seed,
    /// Print an HS256 bearer token for development and tests.
    MintToken {
        /// The token subject (the user's or operator's identity).
        #[arg(long)]
        sub: String,
        /// The identity's verified email (links invitations; enrollment uses it).
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds; negative for a token that has already expired (`--ttl=-60`).
        #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
        ttl: i64,
        /// Make the subject an operator (needs DATABASE_URL; not in production).
        #[arg(long, conflicts_with_all = ["partner", "roles"])]
        operator: bool,
        /// Make the subject an ACTIVE user of this partner with `--roles` (needs DATABASE_URL
        /// and `--email`; not in production).
        #[arg(long, requires_all = ["roles", "email"])]
        partner: Option<String>,
        /// The user's roles, comma-separated: GLOBAL_ADMIN, USER_ADMIN, ADMIN_AGENT,
        /// MPN_PARTNER_ADMIN (with `--partner`).
        #[arg(long, requires = "partner", value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Print the GraphQL SDL (what `schema.graphql` holds).
    PrintSchema,
    /// Re-encrypt every product key under the first key of KEY_ENCRYPTION_KEYS (safe while
    /// serving; run it after putting a new key first). Fails when a product key is under a key
    /// the ring does not hold.
    RotateKeys {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

fn config() -> anyhow::Result<Arc<Config>> {
    Config::from_env()
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!(e))
}

/// mimalloc instead of glibc malloc: allocation was about 15% of the api's CPU under the
/// dashboard load (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Kept to the end of main: dropping it flushes the last spans (trace export).
    let _telemetry = gateway_domain::logs::init("info,gateway=debug", "gateway-api");
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::PrintSchema => print!("{}", gateway_api::graphql::sdl()),
        Command::MintToken {
            sub,
            email,
            name,
            ttl,
            operator,
            partner,
            roles,
        } => {
            // Signing needs only the identity settings: don't insist on connection URLs
            // unless the identity is to be made an operator or a user.
            let mut vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
            for key in ["DATABASE_URL", "REDIS_URL"] {
                vars.entry(key.into()).or_insert_with(|| "unused://".into());
            }
            let cfg = Config::from_map(&vars).map_err(|e| anyhow::anyhow!(e))?;
            let token = gateway_domain::auth::mint_dev_token_expiring(
                &cfg.auth,
                &sub,
                email.as_deref(),
                name.as_deref(),
                ttl,
            )?;
            if operator || partner.is_some() {
                anyhow::ensure!(
                    !cfg.is_production(),
                    "mint-token makes operators and users only outside production"
                );
                anyhow::ensure!(
                    cfg.database.url != "unused://",
                    "--operator and --partner need DATABASE_URL"
                );
                let pool = gateway_domain::db::pool_for(&cfg.database, 1)?;
                let mut conn = pool.get().await?;
                if operator {
                    let email = email
                        .clone()
                        .unwrap_or_else(|| format!("{sub}@operators.invalid"));
                    let name = name.clone().unwrap_or_else(|| sub.clone());
                    gateway_domain::seed::ensure_operator(&mut conn, &sub, &email, &name).await?;
                }
                if let Some(partner) = partner {
                    let partner = uuid::Uuid::parse_str(partner.trim())
                        .map_err(|_| anyhow::anyhow!("--partner must be a partner id (a UUID)"))?;
                    let roles = roles
                        .iter()
                        .map(|r| {
                            r.trim()
                                .to_ascii_uppercase()
                                .replace('-', "_")
                                .parse::<gateway_domain::enums::TenantRole>()
                                .map_err(|_| {
                                    anyhow::anyhow!(
                                    "unknown role `{r}`: GLOBAL_ADMIN, USER_ADMIN, ADMIN_AGENT or \
                                     MPN_PARTNER_ADMIN"
                                )
                                })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let email = email.as_deref().unwrap_or_default();
                    gateway_domain::seed::ensure_member(&mut conn, partner, &sub, email, &roles)
                        .await?;
                }
            }
            println!("{token}");
        }
        Command::Migrate => {
            let cfg = config()?;
            gateway_domain::db::ensure_database(&cfg.database.direct_url).await?;
            let applied = gateway_domain::db::migrate(&cfg.database.direct_url).await?;
            eprintln!("applied {} migration(s)", applied.len());
        }
        Command::Seed => {
            let cfg = config()?;
            gateway_domain::db::ensure_database(&cfg.database.direct_url).await?;
            gateway_domain::db::migrate(&cfg.database.direct_url).await?;
            let pool = gateway_domain::db::pool_for(&cfg.database, 1)?;
            if gateway_domain::seed::run(&mut *pool.get().await?, cfg.env).await? {
                eprintln!("seeded (demo operator `demo-operator`)");
            } else {
                eprintln!("seeded (no demo operator outside APP_ENV=development)");
            }
        }
        Command::RotateKeys { batch } => {
            let cfg = config()?;
            let ring = &cfg.benefits.keyring;
            let pool = gateway_domain::db::pool_for(&cfg.database, 1)?;
            let done =
                gateway_domain::benefits::keys::rotate(&mut *pool.get().await?, ring, batch.max(1))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            eprintln!(
                "re-encrypted {} product key(s) under key `{}`",
                done.rotated,
                ring.current().0
            );
            anyhow::ensure!(
                done.unreadable == 0,
                "{} product key(s) are under a key KEY_ENCRYPTION_KEYS does not hold (it holds {:?}): put that key back",
                done.unreadable,
                ring.ids()
            );
        }
        Command::Serve { no_migrate } => {
            let cfg = config()?;
            if !no_migrate {
                gateway_domain::db::migrate(&cfg.database.direct_url).await?;
            }
            let gateway_api::App {
                router: app,
                metrics,
            } = gateway_api::app(cfg.clone()).await?;
            if let Some(bind) = cfg.http.metrics_bind.clone() {
                // Private: /metrics without a token. A port already taken is logged, not fatal.
                match tokio::net::TcpListener::bind(&bind).await {
                    Ok(l) => {
                        tracing::info!(addr = %bind, "metrics listening");
                        tokio::spawn(async move {
                            if let Err(e) = axum::serve(l, metrics).await {
                                tracing::error!(error = %e, "metrics listener failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::error!(%bind, error = %e, "cannot listen on METRICS_BIND; /metrics is not served")
                    }
                }
            }
            let listener = tokio::net::TcpListener::bind(&cfg.http.bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on API_BIND={}: {e}", cfg.http.bind))?;
            tracing::info!(addr = %listener.local_addr()?, env = ?cfg.env, "api listening");
            gateway_api::http::server::serve(
                listener,
                app,
                cfg.http.header_read_timeout,
                shutdown(),
            )
            .await?;
        }
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
