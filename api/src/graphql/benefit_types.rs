//! GraphQL output types of benefits.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use gateway_domain::benefits::{azure, seats};
use gateway_domain::db::models;
use gateway_domain::enums::*;
use gateway_domain::permissions::Action;

use super::billing_types::{money, Money};
use super::{loaders, now_for, principal};

#[derive(SimpleObject)]
/// The activation of a technical benefit or a Go-To-Market offer: requested by the partner, completed by the worker after days of partner time.
pub struct Activation {
    /// Where the activation stands.
    pub state: ActivationState,
    /// When the partner asked for the activation.
    pub requested_at: Option<DateTime<Utc>>,
    /// When the pending activation is expected to complete.
    pub expected_completion_at: Option<DateTime<Utc>>,
    /// When the activation completed (ACTIVE).
    pub completed_at: Option<DateTime<Utc>>,
    /// FAILED: why; activate again to retry.
    pub failure_reason: Option<String>,
}

#[derive(SimpleObject)]
/// Whether a product key was revealed (the key itself comes only from `revealProductKey`).
pub struct KeyInfo {
    /// True once the key was revealed.
    pub revealed: bool,
    /// When it was first revealed (which ends refund eligibility).
    pub first_revealed_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
/// A Visual Studio seat or an Azure user assigned to one of the partner's users.
pub struct Assignment {
    /// The user holding the seat.
    pub user_id: ID,
    /// That user's email.
    pub email: String,
    /// When the seat was assigned.
    pub assigned_at: DateTime<Utc>,
    /// Visual Studio seats: from when the seat may go to someone else.
    pub reassignable_from: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
/// Usage-based Azure credit: a monthly amount granted each month of the term, with no roll-over.
pub struct AzureCredit {
    /// The credit granted each month.
    pub monthly_amount: Money,
    /// This month's credit (no roll-over); zero before the first grant.
    pub balance: Money,
    /// When this month's credit ends (and the next one is granted).
    pub current_period_end: Option<DateTime<Utc>>,
    /// Months granted so far.
    pub months_granted: i32,
}

/// A benefit the partner's package grants for its term (an entitlement): software keys, cloud credit, Visual Studio seats, support incidents and hours, Go-To-Market offers.
pub struct Benefit(pub models::Entitlement);

/// A benefit the partner's package grants for its term (an entitlement): software keys, cloud credit, Visual Studio seats, support incidents and hours, Go-To-Market offers.
#[Object]
impl Benefit {
    /// The benefit's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The benefit's category (the tabs of the Benefits page).
    async fn category(&self) -> BenefitCategory {
        self.0.category
    }
    /// How the benefit is delivered and used.
    async fn delivery(&self) -> BenefitDelivery {
        self.0.delivery
    }
    /// The benefit's stable code, for example `PRODUCT_SUPPORT`.
    async fn code(&self) -> &str {
        &self.0.benefit_code
    }
    /// The product's display name.
    async fn product(&self) -> &str {
        &self.0.product
    }
    /// What `quantity`, `used` and `remaining` count (keys, seats, incidents, hours, …).
    async fn unit(&self) -> &str {
        &self.0.unit
    }
    /// Null: unlimited.
    async fn quantity(&self) -> Option<i32> {
        self.0.quantity
    }
    /// Consumed this term (incidents, hours) or assigned (seats).
    async fn used(&self) -> i32 {
        self.0.used
    }
    /// Null: unlimited.
    async fn remaining(&self) -> Option<i32> {
        self.0.quantity.map(|q| q - self.0.used)
    }
    /// The package term the benefit belongs to (1 for the first year).
    async fn term(&self) -> i32 {
        self.0.term
    }
    /// ACTIVE, or REVOKED once the package lapsed or was cancelled.
    async fn status(&self) -> EntitlementStatus {
        self.0.status
    }
    /// Technical benefits and Go-To-Market offers; null for the others.
    async fn activation(&self) -> Option<Activation> {
        self.0.activation.map(|state| Activation {
            state,
            requested_at: self.0.activation_requested_at,
            expected_completion_at: self.0.activation_due_at,
            completed_at: self.0.activated_at,
            failure_reason: self.0.failure_reason.clone(),
        })
    }
    /// Active technical benefits: the support contract's Access ID (partner users only;
    /// null for operators).
    async fn access_id(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(principal(ctx)?
            .can(Action::ViewSupportIds)
            .then_some(self.0.access_id.as_deref())
            .flatten())
    }
    /// Active technical benefits: the support contract ID (partner users only; null for operators).
    async fn contract_id(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        Ok(principal(ctx)?
            .can(Action::ViewSupportIds)
            .then_some(self.0.contract_id.as_deref())
            .flatten())
    }
    /// The end of the package's term (Go-To-Market offers expire then).
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// The subscription (package) that grants the benefit.
    async fn subscription_id(&self) -> ID {
        ID(self.0.subscription_id.to_string())
    }
    /// The offer of that package (`ACTION_PACK`, `SILVER`, `GOLD`).
    async fn offer_id(&self) -> &str {
        &self.0.offer_id
    }
    /// Benefits delivered as keys: whether the key was revealed (the key itself only comes
    /// from `revealProductKey`).
    async fn key(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<KeyInfo>> {
        if !matches!(
            self.0.delivery,
            BenefitDelivery::ProductKey | BenefitDelivery::LicenseKey
        ) {
            return Ok(None);
        }
        let first = loaders(ctx).key_reveals.load_one(self.0.id).await?;
        Ok(first.map(|f| KeyInfo {
            revealed: f.is_some(),
            first_revealed_at: f,
        }))
    }
    /// Visual Studio seats and Azure users assigned now.
    async fn assignments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Assignment>> {
        if !matches!(
            self.0.delivery,
            BenefitDelivery::Seat | BenefitDelivery::AzureCredit
        ) {
            return Ok(vec![]);
        }
        let seat = self.0.delivery == BenefitDelivery::Seat;
        Ok(loaders(ctx)
            .assignments
            .load_one(self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|(a, email)| Assignment {
                user_id: ID(a.user_id.to_string()),
                email,
                assigned_at: a.assigned_at,
                reassignable_from: seat.then(|| seats::reassignable_from(a.assigned_at)),
            })
            .collect())
    }
    /// Usage-based Azure credit: this month's balance.
    async fn azure_credit(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AzureCredit>> {
        if self.0.delivery != BenefitDelivery::AzureCredit {
            return Ok(None);
        }
        let now = now_for(ctx, self.0.partner_id).await?;
        let grants = loaders(ctx)
            .azure_grants
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        let current = azure::azure_current(&grants, now);
        let months = grants.len() as i32;
        Ok(Some(AzureCredit {
            monthly_amount: money(azure::AZURE_MONTHLY_CREDIT_MINOR, "USD"),
            balance: money(current.as_ref().map(|g| g.amount_minor).unwrap_or(0), "USD"),
            current_period_end: current.map(|g| g.period_end),
            months_granted: months,
        }))
    }
}

#[derive(SimpleObject)]
/// A product key, revealed (the reveal is audited and ends refund eligibility).
pub struct RevealedKey {
    /// The product key.
    pub key: String,
    /// The product it activates.
    pub product: String,
    /// How to use it.
    pub instructions: String,
}

#[derive(SimpleObject)]
/// A file to download for a software benefit.
pub struct Download {
    /// The file's name.
    pub file_name: String,
    /// Where to download it.
    pub url: String,
}

#[derive(SimpleObject)]
/// The partner's marketing contact: Go-To-Market offers are announced to this person.
pub struct MarketingContact {
    /// The user who is the marketing contact.
    pub user_id: ID,
    /// Where marketing emails go.
    pub email: String,
    /// The contact's phone number.
    pub phone: String,
    /// The contact's language (BCP 47), for the emails.
    pub language: String,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

impl From<models::MarketingContact> for MarketingContact {
    fn from(c: models::MarketingContact) -> Self {
        Self {
            user_id: ID(c.user_id.to_string()),
            email: c.email,
            phone: c.phone,
            language: c.language,
            updated_at: c.updated_at,
        }
    }
}
