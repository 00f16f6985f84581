//! The gateway's api: GraphQL over HTTP (axum + async-graphql). `main.rs` is the CLI.

pub mod events;
pub mod graphql;
pub mod http;
pub mod metrics;

use std::sync::Arc;

use gateway_domain::auth::Verifier;
use gateway_domain::config::Config;

/// The HTTP application: the public router (API_BIND) and the private one (METRICS_BIND).
pub struct App {
    pub router: axum::Router,
    pub metrics: axum::Router,
}

/// Builds the whole HTTP application from a configuration.
pub async fn app(config: Arc<Config>) -> anyhow::Result<App> {
    let pool = gateway_domain::db::pool_for(&config.database, config.database.pool_size)?;
    let verifier = Verifier::from_config(&config.auth).await?;
    let redis = gateway_domain::redis_conn::RedisClient::open(&config.redis)
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?;
    let events = events::spawn_listener(config.database.direct_url.clone());
    let services = gateway_domain::services::Services::new(config.clone(), pool.clone())?;
    let build = |flavor| graphql::build(services.clone(), events.clone(), redis.clone(), flavor);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(config.http.max_concurrent));
    let metrics = metrics::Metrics::new();
    let limiter = Arc::new(http::rate_limit::Limiter::new(
        redis.clone(),
        &config.redis.queue_prefix,
        &config.http,
        metrics.registry(),
    ));
    let trusted = match &config.http.trusted_documents {
        Some(path) => Some(Arc::new(http::persisted::load_trusted(path)?)),
        None => None,
    };
    let state = http::AppState {
        in_flight,
        limiter,
        schema: build(graphql::Flavor::Strict),
        validated_schema: build(graphql::Flavor::Validated),
        introspection_schema: build(graphql::Flavor::Introspection),
        config,
        pool,
        verifier,
        redis,
        metrics,
        documents: Default::default(),
        catalog: Default::default(),
        services,
        gauges: Default::default(),
        trusted,
    };
    Ok(App {
        router: http::router(state.clone()),
        metrics: http::metrics_router(state),
    })
}
