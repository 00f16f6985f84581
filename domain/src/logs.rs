//! Log output for both binaries: `LOG_FORMAT=text` (the default, for people) or `json` (one
//! JSON object per line, with the fields of the spans it happened in: the api's request id,
//! operation, partner and user; the worker's queue and job), filtered by `RUST_LOG`. Read from
//! the environment before the configuration, so configuration errors come out in the chosen
//! format too. Nothing secret is ever a field: tokens, keys, card data and verification links
//! are not logged (`tests/tests/production.rs` checks a whole run's logs).

/// Sets up logging to stderr; `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        _ => builder.init(),
    }
}
