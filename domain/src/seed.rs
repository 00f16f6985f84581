//! Seed data: the demo operator `scripts/run` prints a token for, in development only.
//! Idempotent.
//! (The offer catalog arrives with the offers issue; it is seeded by its migration.)

use crate::db::prelude::*;
use chrono::Utc;

use uuid::Uuid;

use crate::db::models::Operator;
use crate::db::schema::operators;
use crate::db::PgConn;

pub const DEMO_OPERATOR_SUBJECT: &str = "demo-operator";

pub async fn ensure_operator(
    conn: &mut PgConn,
    subject: &str,
    email: &str,
    name: &str,
) -> anyhow::Result<()> {
    diesel::insert_into(operators::table)
        .values(&Operator {
            id: Uuid::now_v7(),
            subject: subject.into(),
            email: email.into(),
            name: name.into(),
            created_at: Utc::now(),
        })
        .on_conflict(operators::subject)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Seeds what the environment may have: the demo operator only in development (an identity
/// anyone can mint a dev token for must not exist in production, nor in tests, which make
/// their own operators). Returns whether it was made.
pub async fn run(conn: &mut PgConn, env: crate::config::AppEnv) -> anyhow::Result<bool> {
    if env != crate::config::AppEnv::Development {
        return Ok(false);
    }
    ensure_operator(
        conn,
        DEMO_OPERATOR_SUBJECT,
        "operator@partners.example",
        "Demo Operator",
    )
    .await?;
    Ok(true)
}
