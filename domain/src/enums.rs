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
        GlobalAdmin => "GLOBAL_ADMIN",
        UserAdmin => "USER_ADMIN",
        AdminAgent => "ADMIN_AGENT",
        MpnPartnerAdmin => "MPN_PARTNER_ADMIN",
    }
);

text_enum!(VettingStatus {
    Pending => "PENDING",
    Authorized => "AUTHORIZED",
    Rejected => "REJECTED",
});

text_enum!(VettingSubStatus {
    EmailOwnership => "EMAIL_OWNERSHIP",
    EmploymentVerification => "EMPLOYMENT_VERIFICATION",
    BusinessVerification => "BUSINESS_VERIFICATION",
    Decision => "DECISION",
});

text_enum!(
    /// Legal-profile fields whose change re-opens verification.
    VerifiedField {
        LegalName => "LEGAL_NAME",
        Address => "ADDRESS",
    }
);

text_enum!(UserStatus {
    Invited => "INVITED",
    Active => "ACTIVE",
    Removed => "REMOVED",
});

text_enum!(VettingDecision {
    Authorize => "AUTHORIZE",
    Reject => "REJECT",
});

text_enum!(ServiceRequestKind {
    /// "Help with partner invoice, payment, or reconciliation file" (cancellations, refunds).
    Billing => "BILLING",
    TechnicalSupport => "TECHNICAL_SUPPORT",
    PresalesDeployment => "PRESALES_DEPLOYMENT",
    Other => "OTHER",
});

text_enum!(
    /// What a service request is for. Only a CANCELLATION request (made with
    /// `requestCancellation`) ever cancels a subscription.
    ServiceRequestIntent {
        General => "GENERAL",
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

text_enum!(Severity {
    Critical => "CRITICAL",
    Moderate => "MODERATE",
    Minimal => "MINIMAL",
});

text_enum!(ServiceRequestStatus {
    Open => "OPEN",
    AttentionNeeded => "ATTENTION_NEEDED",
    Closed => "CLOSED",
});

text_enum!(EmailStatus {
    Pending => "PENDING",
    Sent => "SENT",
    Dead => "DEAD",
});

text_enum!(ActorKind {
    User => "USER",
    Operator => "OPERATOR",
    /// A signed-in identity not yet linked to a partner (enrollment).
    Identity => "IDENTITY",
    System => "SYSTEM",
});

text_enum!(OfferKind {
    /// Network membership: free, on enrollment, never renews.
    Membership => "MEMBERSHIP",
    ActionPack => "ACTION_PACK",
    Competency => "COMPETENCY",
});

text_enum!(CompetencyLevel {
    Silver => "SILVER",
    Gold => "GOLD",
});

text_enum!(BenefitCategory {
    Software => "SOFTWARE",
    Cloud => "CLOUD",
    VisualStudio => "VISUAL_STUDIO",
    Technical => "TECHNICAL",
    GoToMarket => "GO_TO_MARKET",
});

text_enum!(
    /// How a benefit line is delivered to the partner.
    BenefitDelivery {
        ProductKey => "PRODUCT_KEY",
        LicenseKey => "LICENSE_KEY",
        AzureCredit => "AZURE_CREDIT",
        Seat => "SEAT",
        Account => "ACCOUNT",
        SupportIncidents => "SUPPORT_INCIDENTS",
        SignatureSupport => "SIGNATURE_SUPPORT",
        AdvisoryHours => "ADVISORY_HOURS",
        GtmOffer => "GTM_OFFER",
    }
);

text_enum!(
    /// PRODUCT.md 2.5: PENDING_PAYMENT → ACTIVE → IN_RENEWAL_WINDOW → LAPSED, plus CANCELLED and
    /// ORDER_EXPIRED.
    SubscriptionStatus {
        PendingPayment => "PENDING_PAYMENT",
        Active => "ACTIVE",
        InRenewalWindow => "IN_RENEWAL_WINDOW",
        Lapsed => "LAPSED",
        Cancelled => "CANCELLED",
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

text_enum!(OrderKind {
    Purchase => "PURCHASE",
    Renewal => "RENEWAL",
});

text_enum!(OrderStatus {
    /// A card charge is under way.
    Processing => "PROCESSING",
    /// Waiting for a bank transfer (expires after 30 days).
    PendingPayment => "PENDING_PAYMENT",
    Paid => "PAID",
    PaymentFailed => "PAYMENT_FAILED",
    Cancelled => "CANCELLED",
    Expired => "EXPIRED",
    Refunded => "REFUNDED",
});

text_enum!(PaymentKind {
    Card => "CARD",
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

text_enum!(EntitlementStatus {
    Active => "ACTIVE",
    /// The package lapsed or was cancelled.
    Revoked => "REVOKED",
});

text_enum!(
    /// Technical benefits and Go-To-Market offers: NOT_ACTIVATED → ACTIVATION_PENDING → ACTIVE,
    /// or FAILED (with a reason; activate again to retry).
    ActivationState {
        NotActivated => "NOT_ACTIVATED",
        ActivationPending => "ACTIVATION_PENDING",
        Active => "ACTIVE",
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
