//! Who may run each root operation, for its description ("Roles: …", the last line of every
//! root field's description in the SDL). The roles come from the permission matrix
//! (`gateway_domain::permissions::who_may`); a test holds every root field's description to
//! this table and this table to the matrix.

use gateway_domain::permissions::{who_may, Action};

/// Who may run an operation.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    /// No sign-in needed.
    Anyone,
    /// Anyone holding a token sent by email.
    TokenHolder,
    /// Any signed-in caller (a partner user, an operator, or an identity not yet in a partner).
    SignedIn,
    /// A signed-in identity that is not yet in a partner.
    NewIdentity,
    /// What the permission matrix allows for this action.
    May(Action),
}

use Action as A;
use Who::*;

/// Every root field (`Query.x`, `Mutation.x`, `SubscriptionRoot.x`) and who may run it.
pub const OPERATIONS: &[(&str, Who)] = &[
    ("Query.partnerAgreement", Anyone),
    ("Query.me", SignedIn),
    ("Query.partner", May(A::ViewPartner)),
    ("Query.partners", May(A::Operate)),
    ("Query.users", May(A::ViewPartner)),
    ("Query.serviceRequests", May(A::ViewPartner)),
    ("Query.serviceRequest", May(A::ViewPartner)),
    ("Query.auditLog", May(A::ViewAuditLog)),
    ("Query.offers", May(A::ViewPartner)),
    ("Query.competencies", SignedIn),
    ("Query.qualifications", May(A::ViewPartner)),
    ("Query.paymentMethods", May(A::Purchase)),
    ("Query.orders", May(A::ViewPartner)),
    ("Query.order", May(A::ViewPartner)),
    ("Query.invoices", May(A::ViewInvoices)),
    ("Query.invoice", May(A::ViewInvoices)),
    ("Query.subscriptions", May(A::ViewPartner)),
    ("Query.subscription", May(A::ViewPartner)),
    ("Query.renewalQuote", May(A::ViewPartner)),
    ("Query.refundEligibility", May(A::ViewPartner)),
    ("Query.testClock", May(A::Operate)),
    ("Query.waitForIdle", May(A::Operate)),
    ("Query.benefits", May(A::ViewPartner)),
    ("Query.benefit", May(A::ViewPartner)),
    ("Query.softwareDownloads", May(A::ViewPartner)),
    ("Query.marketingContact", May(A::ViewPartner)),
    ("Query.jobQueues", May(A::Operate)),
    ("Query.dueWork", May(A::Operate)),
    ("Query.queueThroughput", May(A::Operate)),
    ("Query.workers", May(A::Operate)),
    ("Query.jobs", May(A::Operate)),
    ("Query.findJobs", May(A::Operate)),
    ("Query.job", May(A::Operate)),
    ("Query.node", SignedIn),
    ("Query.nodes", SignedIn),
    ("Mutation.enrollPartner", NewIdentity),
    ("Mutation.verifyPrimaryContactEmail", TokenHolder),
    ("Mutation.resendVerificationEmail", May(A::ViewPartner)),
    ("Mutation.decideVetting", May(A::Operate)),
    ("Mutation.updateLegalProfile", May(A::EditLegalProfile)),
    ("Mutation.addUser", May(A::ManageUsers)),
    ("Mutation.updateUserRoles", May(A::ManageUsers)),
    ("Mutation.removeUser", May(A::ManageUsers)),
    (
        "Mutation.createServiceRequest",
        May(A::CreateSupportRequest),
    ),
    (
        "Mutation.addServiceRequestNote",
        May(A::CreateSupportRequest),
    ),
    ("Mutation.resolveServiceRequest", May(A::Operate)),
    ("Mutation.requestCancellation", May(A::RequestRefund)),
    ("Mutation.recordQualification", May(A::Operate)),
    ("Mutation.removeQualification", May(A::Operate)),
    ("Mutation.addPaymentMethod", May(A::Purchase)),
    ("Mutation.removePaymentMethod", May(A::Purchase)),
    ("Mutation.purchaseOffer", May(A::Purchase)),
    ("Mutation.confirmBankTransfer", May(A::Operate)),
    ("Mutation.confirmRefund", May(A::Operate)),
    ("Mutation.cancelOrder", May(A::Purchase)),
    ("Mutation.turnOffAutoRenew", May(A::Purchase)),
    ("Mutation.setSubscriptionPaymentMethod", May(A::Purchase)),
    ("Mutation.renewSubscription", May(A::Purchase)),
    ("Mutation.advanceTestClock", May(A::Operate)),
    ("Mutation.revealProductKey", May(A::UseBenefits)),
    ("Mutation.activateTechnicalBenefit", May(A::UseBenefits)),
    ("Mutation.activateGoToMarketOffer", May(A::UseBenefits)),
    ("Mutation.setMarketingContact", May(A::UseBenefits)),
    (
        "Mutation.assignVisualStudioSubscription",
        May(A::AssignBenefits),
    ),
    ("Mutation.assignAzureUser", May(A::AssignBenefits)),
    ("Mutation.retryJob", May(A::Operate)),
    ("Mutation.pauseQueue", May(A::Operate)),
    ("Mutation.resumeQueue", May(A::Operate)),
    ("Mutation.retryDeadJobs", May(A::Operate)),
    ("Mutation.discardDeadJobs", May(A::Operate)),
    ("Mutation.discardJob", May(A::Operate)),
    ("SubscriptionRoot.queueStats", May(A::Operate)),
    ("SubscriptionRoot.benefitUpdated", May(A::ViewPartner)),
    ("SubscriptionRoot.subscriptionUpdated", May(A::ViewPartner)),
];

/// The roles line of an operation's description.
pub fn roles_line(who: Who) -> String {
    let text = match who {
        Anyone => "anyone, without signing in".to_owned(),
        TokenHolder => "anyone holding the emailed token, without signing in".to_owned(),
        SignedIn => "any signed-in caller".to_owned(),
        NewIdentity => "a signed-in identity not yet in a partner".to_owned(),
        May(action) => who_may(action),
    };
    format!("Roles: {text}.")
}
