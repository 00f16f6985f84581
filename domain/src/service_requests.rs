//! Service requests (PRODUCT.md 2.7). Partners open and follow theirs; operators see all and
//! resolve. A note from support asks the partner for attention; a note from the partner
//! hands it back to support.

use crate::db::prelude::*;
use chrono::Utc;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::schema::{service_request_notes, service_requests, users};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::validation as v;

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct CreateServiceRequestInput {
    pub kind: ServiceRequestKind,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub product: Option<String>,
    /// The subscription the request is about. A BILLING request linked to a subscription is a
    /// cancellation request: see `refundEligibility` before making it.
    pub subscription_id: Option<async_graphql::ID>,
    /// PRESALES_DEPLOYMENT: advisory hours asked for (default 1). Action Pack partners use
    /// their balance; Silver and Gold partners have unlimited presales help.
    pub advisory_hours: Option<i32>,
    /// TECHNICAL_SUPPORT: draw on Signature Cloud Support (Silver/Gold) instead of a product
    /// support incident.
    #[graphql(default = false)]
    pub signature_cloud_support: bool,
}

/// Billing requests (cancellations, refunds) need the refund permission; the others any user.
pub fn required_action(kind: ServiceRequestKind) -> Action {
    match kind {
        ServiceRequestKind::Billing => Action::RequestRefund,
        _ => Action::CreateSupportRequest,
    }
}

pub async fn create(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    input: CreateServiceRequestInput,
) -> AppResult<ServiceRequest> {
    principal.require(required_action(input.kind))?;
    let partner_id = principal.scope(None)?;
    let Principal::User { user_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    let title = v::text("title", &input.title, 200)?;
    let description = v::text("description", &input.description, 10_000)?;
    let product = v::optional_text("product", input.product.as_deref(), 200)?;
    let subscription_id = input
        .subscription_id
        .as_ref()
        .map(|id| v::uuid_id("subscriptionId", id.as_str()))
        .transpose()?;
    conn.transaction::<_, AppError, _>(async |conn| {
        if let Some(sub) = subscription_id {
            crate::subscriptions::store::load_visible(conn, principal, sub, false).await?;
        }
        // Technical and presales requests draw on the partner's support balances.
        let benefit_id = crate::benefits::support::consume_for_request(
            conn,
            partner_id,
            input.kind,
            input.advisory_hours.unwrap_or(1),
            input.signature_cloud_support,
        )
        .await?;
        let sr: ServiceRequest = diesel::insert_into(service_requests::table)
            .values(&NewServiceRequest {
                id: Uuid::now_v7(),
                partner_id,
                kind: input.kind,
                title,
                description,
                severity: input.severity,
                status: ServiceRequestStatus::Open,
                product,
                subscription_id,
                benefit_id,
                created_by: *user_id,
            })
            .returning(ServiceRequest::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "service_request.created",
            ("service_request", sr.id.to_string()),
            json!({"kind": sr.kind, "severity": sr.severity, "subscription": sr.subscription_id}),
        )
        .await?;
        Ok(sr)
    })
    .await
}

/// A request the caller may see: its own partner's, or any for an operator.
pub async fn load_visible(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
) -> AppResult<ServiceRequest> {
    principal.require(Action::ViewPartner)?;
    let mut q = service_requests::table
        .find(id)
        .select(ServiceRequest::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(service_requests::partner_id.eq(principal.scope(None)?));
    }
    q.first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("service request"))
}

pub struct ListFilter {
    pub partner_id: Option<Uuid>,
    pub status: Option<ServiceRequestStatus>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Newest first. Partner users see their partner's; operators all, or one partner's.
pub async fn list(
    conn: &mut PgConn,
    principal: &Principal,
    f: ListFilter,
) -> AppResult<Vec<ServiceRequest>> {
    principal.require(Action::ViewPartner)?;
    let mut q = service_requests::table
        .order(service_requests::id.desc())
        .limit(f.limit)
        .select(ServiceRequest::as_select())
        .into_boxed();
    let scope = if principal.is_operator() {
        f.partner_id
    } else {
        Some(principal.scope(f.partner_id)?)
    };
    if let Some(p) = scope {
        q = q.filter(service_requests::partner_id.eq(p));
    }
    if let Some(s) = f.status {
        q = q.filter(service_requests::status.eq(s));
    }
    if let Some(b) = f.before {
        q = q.filter(service_requests::id.lt(b));
    }
    Ok(q.load(conn).await?)
}

pub async fn notes(conn: &mut PgConn, request_ids: &[Uuid]) -> AppResult<Vec<ServiceRequestNote>> {
    Ok(service_request_notes::table
        .filter(service_request_notes::service_request_id.eq_any(request_ids))
        .order((service_request_notes::created_at, service_request_notes::id))
        .select(ServiceRequestNote::as_select())
        .load(conn)
        .await?)
}

fn author(principal: &Principal, display: Option<String>) -> AppResult<(ActorKind, Uuid, String)> {
    match principal {
        Principal::User { user_id, email, .. } => Ok((
            ActorKind::User,
            *user_id,
            display.unwrap_or_else(|| email.clone()),
        )),
        Principal::Operator {
            operator_id, name, ..
        } => Ok((
            ActorKind::Operator,
            *operator_id,
            format!("{name} (support)"),
        )),
        Principal::Identity { .. } => Err(AppError::Forbidden),
    }
}

async fn insert_note(
    conn: &mut PgConn,
    principal: &Principal,
    display: Option<String>,
    id: Uuid,
    body: String,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let (author_kind, author_id, author_name) = author(principal, display)?;
    diesel::insert_into(service_request_notes::table)
        .values(&ServiceRequestNote {
            id: Uuid::now_v7(),
            service_request_id: id,
            author_kind,
            author_id,
            author_name,
            body,
            created_at: now,
        })
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn add_note(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
    body: &str,
) -> AppResult<ServiceRequest> {
    if !principal.is_operator() {
        principal.require(Action::CreateSupportRequest)?;
    }
    let body = v::text("body", body, 10_000)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sr = load_visible(conn, principal, id).await?;
        if sr.status == ServiceRequestStatus::Closed {
            return Err(AppError::not_eligible(
                "REQUEST_CLOSED",
                "this service request is closed; open a new one",
            ));
        }
        let display = match principal {
            Principal::User { user_id, .. } => {
                users::table
                    .find(*user_id)
                    .select(users::display_name)
                    .first::<Option<String>>(conn)
                    .await?
            }
            _ => None,
        };
        let now = Utc::now();
        insert_note(conn, principal, display, id, body, now).await?;
        let status = if principal.is_operator() {
            ServiceRequestStatus::AttentionNeeded
        } else {
            ServiceRequestStatus::Open
        };
        let updated = diesel::update(service_requests::table.find(id))
            .set((
                service_requests::status.eq(status),
                service_requests::updated_at.eq(now),
            ))
            .returning(ServiceRequest::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(sr.partner_id),
            "service_request.note_added",
            ("service_request", id.to_string()),
            json!({"status": status}),
        )
        .await?;
        Ok(updated)
    })
    .await
}

pub async fn resolve(
    conn: &mut PgConn,
    svc: &crate::services::Services,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
    resolution: &str,
) -> AppResult<ServiceRequest> {
    principal.require(Action::Operate)?;
    let resolution = v::text("resolution", resolution, 10_000)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sr: ServiceRequest = service_requests::table
            .find(id)
            .for_update()
            .select(ServiceRequest::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or(AppError::NotFound("service request"))?;
        if sr.status == ServiceRequestStatus::Closed {
            return Err(AppError::Conflict(
                "this service request is already closed".into(),
            ));
        }
        // A billing request about a subscription is a cancellation: decide it with the
        // resolution, in the same transaction.
        let resolution = match (sr.kind, sr.subscription_id) {
            (ServiceRequestKind::Billing, Some(sub)) => {
                let decision =
                    crate::lifecycle::cancellation::decide_cancellation(conn, svc, actor, sub)
                        .await?;
                format!("{resolution}\n\n{decision}")
            }
            _ => resolution,
        };
        let now = Utc::now();
        insert_note(conn, principal, None, id, resolution.clone(), now).await?;
        let updated = diesel::update(service_requests::table.find(id))
            .set((
                service_requests::status.eq(ServiceRequestStatus::Closed),
                service_requests::resolution.eq(&resolution),
                service_requests::closed_at.eq(now),
                service_requests::updated_at.eq(now),
            ))
            .returning(ServiceRequest::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(sr.partner_id),
            "service_request.resolved",
            ("service_request", id.to_string()),
            json!({}),
        )
        .await?;
        Ok(updated)
    })
    .await
}
