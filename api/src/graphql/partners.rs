//! Partner account: `me`, `partner`, `partners` (operators), enrollment and vetting.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use gateway_domain::enrollment::enroll::{self, EnrollPartnerInput};
use gateway_domain::enrollment::profile::{self, UpdateLegalProfileInput};
use gateway_domain::enrollment::{verification, vetting};
use gateway_domain::enums::{VettingDecision, VettingStatus};
use gateway_domain::partners;
use gateway_domain::permissions::Principal;

use super::pagination;
use super::types::*;
use super::{actor, conn, parse_id, principal, request, shared};

#[derive(Default)]
pub struct PartnerQuery;

/// The partner agreement a new partner accepts when enrolling.
#[derive(async_graphql::SimpleObject)]
pub struct PartnerAgreement {
    /// The agreement's name (`MICROSOFT_PARTNER_AGREEMENT`).
    pub name: &'static str,
    /// The current version: `enrollPartner` takes it as `agreementVersion`.
    pub version: &'static str,
}

#[Object]
impl PartnerQuery {
    /// The partner agreement in force: what the enrollment page shows and `enrollPartner`
    /// expects as `agreementVersion`. Answers without signing in.
    ///
    /// Roles: anyone, without signing in.
    async fn partner_agreement(&self) -> PartnerAgreement {
        PartnerAgreement {
            name: enroll::PARTNER_AGREEMENT,
            version: enroll::PARTNER_AGREEMENT_VERSION,
        }
    }

    /// The caller: partner user, operator, or a signed-in identity that may enroll.
    ///
    /// Roles: any signed-in caller.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(match p {
            Principal::User {
                user_id,
                partner_id,
                subject,
                email,
                ..
            } => Me {
                identity: Identity {
                    subject: subject.clone(),
                    email: Some(email.clone()),
                },
                user: Some(User(gateway_domain::users::load(&mut c, *user_id).await?)),
                partner: Some(Partner(partners::load_partner(&c, *partner_id).await?)),
                operator: None,
            },
            Principal::Operator {
                operator_id,
                subject,
                name,
            } => Me {
                identity: Identity {
                    subject: subject.clone(),
                    email: None,
                },
                user: None,
                partner: None,
                operator: Some(OperatorInfo {
                    id: ID(operator_id.to_string()),
                    name: name.clone(),
                }),
            },
            Principal::Identity { subject, email, .. } => Me {
                identity: Identity {
                    subject: subject.clone(),
                    email: email.clone(),
                },
                user: None,
                partner: None,
                operator: None,
            },
        })
    }

    /// The caller's partner. Operators name one with `id`; a partner user naming another
    /// partner gets NOT_FOUND.
    ///
    /// Roles: any partner user; operators.
    pub(crate) async fn partner(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner (partner users: omit, or their own).")] id: Option<
            ID,
        >,
    ) -> async_graphql::Result<Partner> {
        let p = principal(ctx)?;
        let requested = id.as_ref().map(|i| parse_id("id", i)).transpose()?;
        let known = request(ctx).own_partner.as_ref();
        Ok(Partner(
            partners::visible(&shared(ctx).pool, p, requested, known).await?,
        ))
    }

    /// Operators: partners, newest first, optionally by vetting status.
    ///
    /// Roles: operators.
    async fn partners(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only partners with this vetting status.")] vetting_status: Option<
            VettingStatus,
        >,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Partner, pagination::TotalCount>> {
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        let rows = partners::list_partners(&mut c, p, vetting_status, before, limit + 1).await?;
        let total =
            pagination::total_count(ctx, || partners::count_partners(&mut c, p, vetting_status))
                .await?;
        Ok(pagination::connection(
            rows.into_iter().map(Partner).collect(),
            limit,
            before.is_some(),
            total,
            |p| p.0.id,
        ))
    }
}

#[derive(Default)]
pub struct PartnerMutation;

#[Object]
impl PartnerMutation {
    /// Enrolls the signed-in identity's organization: legal profile, primary contact, tenant,
    /// agreement acceptance. Grants Network membership; the caller becomes Global admin and
    /// Admin agent; a verification email goes to the primary contact.
    ///
    /// Roles: a signed-in identity not yet in a partner.
    async fn enroll_partner(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The legal profile, the primary contact and the agreement accepted.")]
        input: EnrollPartnerInput,
    ) -> async_graphql::Result<EnrollPartnerPayload> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        let done = enroll::enroll(&mut c, &shared(ctx).config, p, &actor(ctx)?, input).await?;
        Ok(EnrollPartnerPayload {
            partner: Partner(done.partner),
            user: User(done.user),
        })
    }

    /// Follows the verification link. The token is the credential; no sign-in needed.
    ///
    /// Roles: anyone holding the emailed token, without signing in.
    async fn verify_primary_contact_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The token from the verification email's link (`/verify-email?token=…`)."
        )]
        token: String,
    ) -> async_graphql::Result<VerifyEmailPayload> {
        let r = request(ctx);
        let actor = match &r.principal {
            Some(p) => gateway_domain::audit::Actor::of(p, Some(r.request_id.clone())),
            None => gateway_domain::audit::Actor {
                kind: gateway_domain::enums::ActorKind::System,
                id: "email-link".into(),
                request_id: Some(r.request_id.clone()),
            },
        };
        let mut c = conn(ctx).await?;
        let out = verification::verify_email(&mut c, &shared(ctx).config, &actor, &token).await?;
        Ok(VerifyEmailPayload {
            vetting_status: out.vetting_status,
            vetting_sub_status: out.vetting_sub_status,
        })
    }

    /// Sends a new verification email (earlier links stop working). Rate limited.
    ///
    /// Roles: any partner user; operators.
    async fn resend_verification_email(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<ResendVerificationPayload> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        let sent_at =
            verification::resend_verification(&mut c, &shared(ctx).config, p, &actor(ctx)?).await?;
        Ok(ResendVerificationPayload { sent_at })
    }

    /// Operators: authorize or reject a partner (a rejection needs a reason).
    ///
    /// Roles: operators.
    async fn decide_vetting(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner to decide on.")] partner_id: ID,
        #[graphql(desc = "Authorize or reject.")] decision: VettingDecision,
        #[graphql(desc = "Why (required to reject; shown to the partner).")] reason: Option<String>,
    ) -> async_graphql::Result<Partner> {
        let p = principal(ctx)?;
        let id = parse_id("partnerId", &partner_id)?;
        let mut c = conn(ctx).await?;
        Ok(Partner(
            vetting::decide_vetting(&mut c, p, &actor(ctx)?, id, decision, reason).await?,
        ))
    }

    /// Global admins: edit the legal profile. Changing the legal name or address re-opens
    /// verification of those fields.
    ///
    /// Roles: Global admin.
    async fn update_legal_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change; omitted fields stay.")]
        input: UpdateLegalProfileInput,
    ) -> async_graphql::Result<Partner> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(Partner(
            profile::update_legal_profile(&mut c, p, &actor(ctx)?, input).await?,
        ))
    }
}
