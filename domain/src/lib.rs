//! The gateway's domain: rules, persistence, job definitions and email templates.
//! The api and the worker are thin shells around this crate.

pub mod audit;
pub mod auth;
pub mod benefits;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod db;
pub mod email;
pub mod enrollment;
pub mod enums;
pub mod error;
pub mod jobs;
pub mod lifecycle;
pub mod outbox;
pub mod permissions;
pub mod queues;
pub mod seed;
pub mod service_requests;
pub mod services;
pub mod users;
pub mod validation;

pub use error::{AppError, AppResult};
