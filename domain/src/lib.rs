//! The gateway's domain: rules, persistence, job definitions and email templates. The api and
//! the worker are thin shells around this crate. Its modules stand in layers, declared in
//! [`layers`] (imports only point down; a test holds the code to it).

pub mod audit;
pub mod auth;
pub mod benefits;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod db;
pub mod due;
pub mod email;
pub mod enrollment;
pub mod enums;
pub mod error;
pub mod events;
pub mod jobs;
pub mod layers;
pub mod lifecycle;
pub mod logs;
pub mod nodes;
pub mod notify;
pub mod ops_sessions;
pub mod outbox;
pub mod partners;
pub mod permissions;
pub mod providers;
pub mod purchases;
pub mod queues;
pub mod redis_conn;
pub mod runner;
pub mod seed;
pub mod service_requests;
pub mod services;
pub mod subscriptions;
pub mod telemetry;
pub mod users;
pub mod validation;

pub use error::{AppError, AppResult};

/// The prefix of every metric the api and the worker export (`pbg_…`); the standard process
/// metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …) keep their names.
pub const METRICS_PREFIX: &str = "pbg";
