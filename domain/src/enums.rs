//! Domain enumerations. Stored as `text` (with CHECK constraints in the migrations), exposed
//! as GraphQL enums, parsed with `FromStr`. `text_enum!` writes the glue once. They derive
//! `async_graphql::Enum` (and domain inputs `InputObject`): the GraphQL names are the
//! domain's names, and a second set of types would only add a mapping to keep in step.

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, async_graphql::Enum,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{}`", stringify!($name), other)),
                }
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    &mut out.reborrow(),
                )
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let s = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(bytes)?;
                s.parse().map_err(Into::into)
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(
    /// Roles a partner user can hold (several at once). A user with none is a plain member.
    TenantRole {
        /// Everything, for the partner (the enrolling user is one).
        GlobalAdmin => "GLOBAL_ADMIN",
        /// Manages users and their roles.
        UserAdmin => "USER_ADMIN",
        /// Buys, renews and pays; manages benefits and support.
        AdminAgent => "ADMIN_AGENT",
        /// Manages the partner's program membership, benefits and invoices.
        MpnPartnerAdmin => "MPN_PARTNER_ADMIN",
    }
);

text_enum!(
    /// Where a partner's verification stands.
    VettingStatus {
    /// Being verified.
    Pending => "PENDING",
    /// Verified: the partner may buy.
    Authorized => "AUTHORIZED",
    /// Not verified.
    Rejected => "REJECTED",
});

text_enum!(
    /// The step a pending verification is at.
    VettingSubStatus {
    /// Waiting for the primary contact to follow the email link.
    EmailOwnership => "EMAIL_OWNERSHIP",
    /// Checking that the contact works for the company.
    EmploymentVerification => "EMPLOYMENT_VERIFICATION",
    /// Checking the company's legal name and address.
    BusinessVerification => "BUSINESS_VERIFICATION",
    /// Waiting for an operator's decision.
    Decision => "DECISION",
});

text_enum!(
    /// Legal-profile fields whose change re-opens verification.
    VerifiedField {
        /// The legal name.
        LegalName => "LEGAL_NAME",
        /// The legal address.
        Address => "ADDRESS",
    }
);

text_enum!(
    /// Where a user stands.
    UserStatus {
    /// Invited; becomes active on first sign-in with the invited email.
    Invited => "INVITED",
    /// Signed in at least once.
    Active => "ACTIVE",
    /// Removed: no access.
    Removed => "REMOVED",
});

text_enum!(
    /// An operator's vetting decision.
    VettingDecision {
    /// The partner is verified: purchases open.
    Authorize => "AUTHORIZE",
    /// The partner is not verified (with a reason).
    Reject => "REJECT",
});

text_enum!(
    /// What kind of help a service request asks for.
    ServiceRequestKind {
    /// "Help with partner invoice, payment, or reconciliation file" (cancellations, refunds).
    Billing => "BILLING",
    /// Technical support: uses a support incident (needs the activated support benefit).
    TechnicalSupport => "TECHNICAL_SUPPORT",
    /// Presales or deployment advice: uses advisory hours.
    PresalesDeployment => "PRESALES_DEPLOYMENT",
    /// Anything else (cancellations, questions).
    Other => "OTHER",
});

text_enum!(
    /// What a service request is for. Only a CANCELLATION request (made with
    /// `requestCancellation`) ever cancels a subscription.
    ServiceRequestIntent {
        /// A request for help.
        General => "GENERAL",
        /// A request to cancel a subscription (`requestCancellation`).
        Cancellation => "CANCELLATION",
    }
);

text_enum!(
    /// An operator's decision on a cancellation request.
    CancellationDecision {
        /// Refund through the gateway (a job); the subscription is cancelled at once and its
        /// benefits revoked. Only while a refund is still due.
        Refund => "REFUND",
        /// No refund: auto-renew off, the subscription ends on its anniversary date (no
        /// renewal window, no window reminders).
        EndAtAnniversary => "END_AT_ANNIVERSARY",
        /// Nothing changes; the resolution note says why.
        Decline => "DECLINE",
    }
);

text_enum!(
    /// Why automatic renewal is off for a subscription (`Subscription.autoRenewOffReason`).
    AutoRenewOffReason {
        /// A cancellation was decided without a refund: it ends on its anniversary date.
        EndsAtAnniversary => "ENDS_AT_ANNIVERSARY",
        /// Paid by bank transfer: there is no saved card to charge. Renew by hand in the
        /// renewal window, by card or by bank transfer.
        NoCard => "NO_CARD",
        /// The card was refused for good at a renewal attempt; renew by hand.
        CardRefused => "CARD_REFUSED",
        /// A user turned it off.
        TurnedOff => "TURNED_OFF",
    }
);

text_enum!(
    /// A refund's own state on its order.
    RefundStatus {
        /// Asked for; the gateway call (card) or the outgoing transfer (bank) is to come.
        RefundPending => "REFUND_PENDING",
        /// The money went back.
        Refunded => "REFUNDED",
        /// The gateway refused it, or kept failing; the reason is on the order.
        RefundFailed => "REFUND_FAILED",
    }
);

text_enum!(
    /// A use of a benefit that ends refund eligibility (a key reveal has its own column).
    BenefitUse {
        TechnicalBenefitActivated => "TECHNICAL_BENEFIT_ACTIVATED",
        GtmOfferActivated => "GTM_OFFER_ACTIVATED",
        VsSeatAssigned => "VS_SEAT_ASSIGNED",
        AzureUserAssigned => "AZURE_USER_ASSIGNED",
    }
);

text_enum!(
    /// How urgent a service request is.
    Severity {
    /// Business stopped.
    Critical => "CRITICAL",
    /// Business impaired.
    Moderate => "MODERATE",
    /// A question or a small problem.
    Minimal => "MINIMAL",
});

text_enum!(
    /// Where a service request stands.
    ServiceRequestStatus {
    /// Waiting for an operator.
    Open => "OPEN",
    /// Waiting for the partner.
    AttentionNeeded => "ATTENTION_NEEDED",
    /// Resolved.
    Closed => "CLOSED",
});

text_enum!(EmailStatus {
    Pending => "PENDING",
    Sent => "SENT",
    Dead => "DEAD",
});

text_enum!(
    /// Who did something recorded in the audit log.
    ActorKind {
    /// A user of the partner.
    User => "USER",
    /// An operator of the program.
    Operator => "OPERATOR",
    /// A signed-in identity not yet linked to a partner (enrollment).
    Identity => "IDENTITY",
    /// The system itself (the worker's due work: renewals, lapses, activations).
    System => "SYSTEM",
});

text_enum!(
    /// The kinds of offer.
    OfferKind {
    /// Network membership: free, on enrollment, never renews.
    Membership => "MEMBERSHIP",
    /// The annual Action Pack: no competency needed.
    ActionPack => "ACTION_PACK",
    /// A Silver or Gold competency package: needs a qualification at its level.
    Competency => "COMPETENCY",
});

text_enum!(
    /// A competency level (and the package bought for it).
    CompetencyLevel {
    /// Silver.
    Silver => "SILVER",
    /// Gold.
    Gold => "GOLD",
});

text_enum!(
    /// The benefit categories (the tabs of the Benefits page).
    BenefitCategory {
    /// On-premises software: product keys and downloads.
    Software => "SOFTWARE",
    /// Cloud services: Azure credit and users.
    Cloud => "CLOUD",
    /// Visual Studio subscriptions (seats).
    VisualStudio => "VISUAL_STUDIO",
    /// Technical support: incidents, Signature Cloud Support, advisory hours.
    Technical => "TECHNICAL",
    /// Go-To-Market offers.
    GoToMarket => "GO_TO_MARKET",
});

text_enum!(
    /// How a benefit line is delivered to the partner.
    BenefitDelivery {
        /// A product key, revealed on demand (`revealProductKey`).
        ProductKey => "PRODUCT_KEY",
        /// A license key, revealed on demand.
        LicenseKey => "LICENSE_KEY",
        /// Monthly Azure credit.
        AzureCredit => "AZURE_CREDIT",
        /// Seats assigned to users (Visual Studio).
        Seat => "SEAT",
        /// Accounts assigned to users (Azure users).
        Account => "ACCOUNT",
        /// Support incidents, used by technical service requests.
        SupportIncidents => "SUPPORT_INCIDENTS",
        /// Signature Cloud Support incidents.
        SignatureSupport => "SIGNATURE_SUPPORT",
        /// Advisory hours, used by presales and deployment requests.
        AdvisoryHours => "ADVISORY_HOURS",
        /// A Go-To-Market offer, activated on request.
        GtmOffer => "GTM_OFFER",
    }
);

text_enum!(
    /// PRODUCT.md 2.5: PENDING_PAYMENT → ACTIVE → IN_RENEWAL_WINDOW → LAPSED, plus CANCELLED and
    /// ORDER_EXPIRED.
    SubscriptionStatus {
        /// Bought by bank transfer: waiting for the funds.
        PendingPayment => "PENDING_PAYMENT",
        /// Active for the current term.
        Active => "ACTIVE",
        /// Past its anniversary date and not renewed yet: renew by AD+30 or it lapses.
        InRenewalWindow => "IN_RENEWAL_WINDOW",
        /// Not renewed in time: ended, benefits revoked.
        Lapsed => "LAPSED",
        /// Cancelled: ended, benefits revoked.
        Cancelled => "CANCELLED",
        /// Its bank transfer never arrived.
        OrderExpired => "ORDER_EXPIRED",
    }
);

impl SubscriptionStatus {
    /// Holds the offer: a second purchase of it is refused.
    pub const LIVE: &'static [SubscriptionStatus] = &[
        SubscriptionStatus::PendingPayment,
        SubscriptionStatus::Active,
        SubscriptionStatus::InRenewalWindow,
    ];

    /// Benefits work (paid and not ended).
    pub fn in_good_standing(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Active | SubscriptionStatus::InRenewalWindow
        )
    }
}

text_enum!(
    /// Why an order was placed.
    OrderKind {
    /// A first purchase of a package.
    Purchase => "PURCHASE",
    /// A renewal of a subscription for another term.
    Renewal => "RENEWAL",
});

text_enum!(
    /// Where an order stands.
    OrderStatus {
    /// A card charge is under way.
    Processing => "PROCESSING",
    /// Waiting for a bank transfer (expires after 30 days).
    PendingPayment => "PENDING_PAYMENT",
    /// Paid: the subscription is active for the term.
    Paid => "PAID",
    /// The card was refused; `failureCode` says why.
    PaymentFailed => "PAYMENT_FAILED",
    /// Cancelled before it was paid.
    Cancelled => "CANCELLED",
    /// A bank transfer that did not arrive in time.
    Expired => "EXPIRED",
    /// Paid, then refunded (see `refund`).
    Refunded => "REFUNDED",
});

text_enum!(
    /// How an order is paid.
    PaymentKind {
    /// By card, charged at once.
    Card => "CARD",
    /// By bank transfer, confirmed by an operator when the funds arrive.
    BankTransfer => "BANK_TRANSFER",
});

text_enum!(
    /// Kinds of due work (table `scheduled_actions`).
    ActionKind {
        RenewalCharge => "RENEWAL_CHARGE",
        Reminder => "REMINDER",
        EnterRenewalWindow => "ENTER_RENEWAL_WINDOW",
        Lapse => "LAPSE",
        OrderExpiry => "ORDER_EXPIRY",
        /// Finishes a card order whose request died between reserving and charging.
        SettleOrder => "SETTLE_ORDER",
        Refund => "REFUND",
        /// Technical benefit or Go-To-Market offer activation reaches its completion time.
        CompleteActivation => "COMPLETE_ACTIVATION",
        /// One month's Azure credit.
        GrantAzureCredit => "GRANT_AZURE_CREDIT",
        /// A cancellation decided without a refund: the subscription ends on its AD.
        EndAtAnniversary => "END_AT_ANNIVERSARY",
    }
);

text_enum!(
    /// Whether a benefit can still be used.
    EntitlementStatus {
    /// Usable.
    Active => "ACTIVE",
    /// The package lapsed or was cancelled.
    Revoked => "REVOKED",
});

text_enum!(
    /// Technical benefits and Go-To-Market offers: NOT_ACTIVATED → ACTIVATION_PENDING → ACTIVE,
    /// or FAILED (with a reason; activate again to retry).
    ActivationState {
        /// Not asked for yet: `activateTechnicalBenefit` or `activateGoToMarketOffer` starts it.
        NotActivated => "NOT_ACTIVATED",
        /// Asked for; the worker completes it at `expectedCompletionAt`.
        ActivationPending => "ACTIVATION_PENDING",
        /// Activated: the benefit can be used (technical benefits carry their Access ID and contract ID).
        Active => "ACTIVE",
        /// The provider refused it; `failureReason` says why. Activate again to retry.
        Failed => "FAILED",
    }
);

text_enum!(ActionStatus {
    Pending => "PENDING",
    Done => "DONE",
    Cancelled => "CANCELLED",
});

text_enum!(
    /// What a sandbox test card does when charged.
    CardBehaviour {
        Succeed => "SUCCEED",
        Decline => "DECLINE",
        Transient => "TRANSIENT",
        HardDecline => "HARD_DECLINE",
    }
);

/// Converts the `text[]` column of roles. Unknown values cannot exist (CHECK constraint).
pub fn roles_from_db(raw: &[String]) -> Vec<TenantRole> {
    let mut roles: Vec<TenantRole> = raw.iter().filter_map(|r| r.parse().ok()).collect();
    roles.sort();
    roles.dedup();
    roles
}

pub fn roles_to_db(roles: &[TenantRole]) -> Vec<String> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    roles.iter().map(|r| r.as_str().to_owned()).collect()
}
