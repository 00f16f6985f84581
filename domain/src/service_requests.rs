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
/// A new support or advisory request.
pub struct CreateServiceRequestInput {
    /// What kind of help is asked for.
    pub kind: ServiceRequestKind,
    /// A one-line summary.
    pub title: String,
    /// What happened and what is needed.
    pub description: String,
    /// How urgent it is.
    pub severity: Severity,
    /// The product concerned, if any.
    pub product: Option<String>,
    /// The subscription the request is about. Linking one never cancels it: a cancellation is
    /// asked for with `requestCancellation`.
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
                intent: ServiceRequestIntent::General,
                refund_eligibility_shown: None,
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
    let mut q = requests_filtered(principal, &f)?
        .order(service_requests::id.desc())
        .limit(f.limit)
        .select(ServiceRequest::as_select());
    if let Some(b) = f.before {
        q = q.filter(service_requests::id.lt(b));
    }
    Ok(q.load(conn).await?)
}

/// How many requests [`list`] lists over every page (`totalCount`; `before` and `limit` of
/// the filter are not used).
pub async fn count(conn: &mut PgConn, principal: &Principal, f: &ListFilter) -> AppResult<i64> {
    Ok(requests_filtered(principal, f)?
        .count()
        .get_result(conn)
        .await?)
}

fn requests_filtered(
    principal: &Principal,
    f: &ListFilter,
) -> AppResult<service_requests::BoxedQuery<'static, diesel::pg::Pg>> {
    principal.require(Action::ViewPartner)?;
    let mut q = service_requests::table.into_boxed();
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
    Ok(q)
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
    decision: Option<CancellationDecision>,
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
        // Only a cancellation request decides a cancellation, and only with a decision.
        let resolution = match (sr.intent, sr.subscription_id, decision) {
            (ServiceRequestIntent::Cancellation, Some(sub), Some(decision)) => {
                let words = crate::lifecycle::cancellation::decide_cancellation(
                    conn, svc, actor, sub, decision,
                )
                .await?;
                format!("{resolution}\n\n{words}")
            }
            (ServiceRequestIntent::Cancellation, _, None) => {
                return Err(AppError::bad_input(
                    "decision",
                    "a cancellation request is resolved with a decision: REFUND, END_AT_ANNIVERSARY or DECLINE",
                ))
            }
            (ServiceRequestIntent::General, _, Some(_)) => {
                return Err(AppError::bad_input(
                    "decision",
                    "only a cancellation request takes a decision",
                ))
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
                service_requests::decision.eq(decision),
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
            json!({"decision": decision}),
        )
        .await?;
        Ok(updated)
    })
    .await
}

/// Asks for a subscription's cancellation (PRODUCT.md 2.5): a BILLING request whose intent is
/// cancellation, recording the refund eligibility shown at this moment. An operator decides
/// it with `resolveServiceRequest(decision:)`. One open cancellation request per subscription.
pub async fn request_cancellation(
    conn: &mut PgConn,
    svc: &crate::services::Services,
    principal: &Principal,
    actor: &Actor,
    subscription_id: Uuid,
    reason: &str,
) -> AppResult<ServiceRequest> {
    principal.require(Action::RequestRefund)?;
    let Principal::User { user_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    let reason = v::text("reason", reason, 10_000)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = crate::subscriptions::store::load_visible(conn, principal, subscription_id, true)
            .await?;
        if !sub.status.in_good_standing() {
            return Err(AppError::not_eligible(
                "NOT_ACTIVE",
                format!(
                    "the subscription is {}; there is nothing to cancel",
                    sub.status
                ),
            ));
        }
        if sub.ends_at_anniversary {
            return Err(AppError::not_eligible(
                "ALREADY_ENDING",
                "the subscription already ends on its anniversary date",
            ));
        }
        let open: i64 = service_requests::table
            .filter(service_requests::subscription_id.eq(sub.id))
            .filter(service_requests::intent.eq(ServiceRequestIntent::Cancellation))
            .filter(service_requests::status.ne(ServiceRequestStatus::Closed))
            .count()
            .get_result(conn)
            .await?;
        if open > 0 {
            return Err(AppError::Conflict(
                "a cancellation request for this subscription is already open".into(),
            ));
        }
        let e = crate::subscriptions::eligibility::refund_eligibility_of(conn, svc, &sub).await?;
        let offer = crate::catalog::offer(conn, &sub.offer_id).await?;
        let sr: ServiceRequest = diesel::insert_into(service_requests::table)
            .values(&NewServiceRequest {
                id: Uuid::now_v7(),
                partner_id: sub.partner_id,
                kind: ServiceRequestKind::Billing,
                title: format!("Cancel {}", offer.name),
                description: reason,
                severity: Severity::Moderate,
                status: ServiceRequestStatus::Open,
                product: None,
                subscription_id: Some(sub.id),
                benefit_id: None,
                created_by: *user_id,
                intent: ServiceRequestIntent::Cancellation,
                refund_eligibility_shown: Some(e.to_json()),
            })
            .returning(ServiceRequest::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(sub.partner_id),
            "subscription.cancellation_requested",
            ("subscription", sub.id.to_string()),
            json!({"service_request": sr.id, "refund_eligible": e.eligible, "reasons": e.reasons}),
        )
        .await?;
        Ok(sr)
    })
    .await
}
