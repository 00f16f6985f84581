//! Seed data: the demo operator `scripts/run` prints a token for, in development only.
//! Idempotent.
//! (The offer catalog arrives with the offers issue; it is seeded by its migration.)

use crate::db::prelude::*;
use chrono::Utc;

use uuid::Uuid;

use crate::db::models::Operator;
use crate::db::schema::operators;
use crate::db::PgConn;
use crate::error::AppError;

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

/// Makes `subject` an ACTIVE user of the partner with exactly `roles`, for `mint-token
/// --partner … --roles …` (development and tests only: the caller refuses production). The
/// user with that subject is updated (it must belong to this partner); otherwise a user of
/// the partner with that email (an invitee) is linked to the subject; otherwise one is made.
/// Returns the user's id.
pub async fn ensure_member(
    conn: &mut PgConn,
    partner_id: Uuid,
    subject: &str,
    email: &str,
    roles: &[crate::enums::TenantRole],
) -> anyhow::Result<Uuid> {
    use crate::db::schema::users;
    use crate::enums::UserStatus;
    anyhow::ensure!(!roles.is_empty(), "give at least one role");
    let roles: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
    conn.transaction::<_, anyhow::Error, _>(async |conn| {
        crate::clock::ensure_partner(conn, partner_id)
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => anyhow::anyhow!("no partner {partner_id}"),
                e => anyhow::anyhow!("{e:?}"),
            })?;
        let by_subject: Option<(Uuid, Uuid)> = users::table
            .filter(users::subject.eq(subject))
            .select((users::id, users::partner_id))
            .first(conn)
            .await
            .optional()?;
        let by_email: Option<(Uuid, Uuid)> = users::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = lower(")
                    .bind::<diesel::sql_types::Text, _>(email)
                    .sql(")"),
            )
            .filter(users::status.ne(UserStatus::Removed))
            .select((users::id, users::partner_id))
            .first(conn)
            .await
            .optional()?;
        let existing = match (by_subject, by_email) {
            (Some((_, p)), _) if p != partner_id => {
                anyhow::bail!("subject `{subject}` is a user of another partner ({p})")
            }
            (Some((id, _)), _) => Some(id),
            (None, Some((_, p))) if p != partner_id => {
                anyhow::bail!("{email} is a user of another partner ({p})")
            }
            (None, Some((id, _))) => Some(id),
            (None, None) => None,
        };
        let id = match existing {
            Some(id) => {
                diesel::update(users::table.find(id))
                    .set((
                        users::subject.eq(subject),
                        users::roles.eq(&roles),
                        users::status.eq(UserStatus::Active),
                        users::updated_at.eq(Utc::now()),
                    ))
                    .execute(conn)
                    .await?;
                id
            }
            None => {
                let id = Uuid::now_v7();
                diesel::insert_into(users::table)
                    .values(&crate::db::models::NewUser {
                        id,
                        partner_id,
                        subject: Some(subject.to_owned()),
                        email: email.to_owned(),
                        display_name: None,
                        roles: roles.clone(),
                        status: UserStatus::Active,
                        invited_by: None,
                    })
                    .execute(conn)
                    .await?;
                id
            }
        };
        Ok(id)
    })
    .await
}
