//! The permission table of PRODUCT.md 2.2, in one place. Guards in the api call
//! [`Principal::require`]; the test at the bottom walks the whole matrix.

use crate::enums::TenantRole;
use crate::error::AppError;
use uuid::Uuid;

/// Every guarded action. One row of the PRODUCT.md 2.2 table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// View partner, offers, subscriptions, benefits (no secrets), own service requests.
    ViewPartner,
    /// Add/remove users, assign roles (extra rules in `users::check_role_change`).
    ManageUsers,
    EditLegalProfile,
    /// Purchase or renew offers, turn off auto-renew, manage payment methods.
    Purchase,
    ViewInvoices,
    /// Reveal software/cloud keys, activate technical benefits, set marketing contact, activate GTM.
    UseBenefits,
    /// Assign benefits to people (Visual Studio, Azure usage-based users).
    AssignBenefits,
    ViewSupportIds,
    CreateSupportRequest,
    RequestRefund,
    /// Vetting decisions, bank transfers, resolving service requests, job queues, test clocks.
    Operate,
    /// The partner's audit log (Global admins; operators read any).
    ViewAuditLog,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::ViewPartner,
        Action::ManageUsers,
        Action::EditLegalProfile,
        Action::Purchase,
        Action::ViewInvoices,
        Action::UseBenefits,
        Action::AssignBenefits,
        Action::ViewSupportIds,
        Action::CreateSupportRequest,
        Action::RequestRefund,
        Action::Operate,
        Action::ViewAuditLog,
    ];
}

use Action as A;
use TenantRole as R;

/// Which tenant roles may do an action. `None` in the list means "any partner user, even a
/// plain member".
fn tenant_rule(action: Action) -> TenantRule {
    match action {
        A::ViewPartner | A::ViewSupportIds | A::CreateSupportRequest => TenantRule::AnyMember,
        A::ManageUsers => TenantRule::Roles(&[R::GlobalAdmin, R::UserAdmin]),
        A::EditLegalProfile | A::AssignBenefits | A::ViewAuditLog => {
            TenantRule::Roles(&[R::GlobalAdmin])
        }
        A::Purchase => TenantRule::Roles(&[R::GlobalAdmin, R::AdminAgent, R::MpnPartnerAdmin]),
        A::ViewInvoices | A::UseBenefits | A::RequestRefund => {
            TenantRule::Roles(&[R::GlobalAdmin, R::MpnPartnerAdmin])
        }
        A::Operate => TenantRule::Roles(&[]),
    }
}

enum TenantRule {
    AnyMember,
    Roles(&'static [TenantRole]),
}

/// Who may do an action, for people: "Global admin, MPN partner admin; operators", or "any
/// partner user; operators" (the roles lines of the SDL's descriptions, README's table).
pub fn who_may(action: Action) -> String {
    let mut who = match tenant_rule(action) {
        TenantRule::AnyMember => vec!["any partner user".to_owned()],
        TenantRule::Roles(roles) => roles.iter().map(|r| role_name(*r).to_owned()).collect(),
    };
    let partner = who.join(", ");
    who.clear();
    if !partner.is_empty() {
        who.push(partner);
    }
    if operator_allowed(action) {
        who.push("operators".into());
    }
    who.join("; ")
}

/// A role's name as Partner Center writes it.
pub fn role_name(role: TenantRole) -> &'static str {
    match role {
        TenantRole::GlobalAdmin => "Global admin",
        TenantRole::UserAdmin => "User admin",
        TenantRole::AdminAgent => "Admin agent",
        TenantRole::MpnPartnerAdmin => "MPN partner admin",
    }
}

/// What an operator may do: operate, and read what support staff need to see.
/// Operators never see secrets (keys, Access/Contract IDs) and never act as a partner.
fn operator_allowed(action: Action) -> bool {
    matches!(
        action,
        A::Operate | A::ViewPartner | A::ViewInvoices | A::ViewAuditLog
    )
}

/// Who is calling, once the bearer token is verified and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A partner user (linked by token subject).
    User {
        user_id: Uuid,
        partner_id: Uuid,
        roles: Vec<TenantRole>,
        email: String,
        subject: String,
    },
    /// Support / operations staff, on no partner.
    Operator {
        operator_id: Uuid,
        subject: String,
        name: String,
    },
    /// A valid token whose subject is not (yet) a partner user: may enroll.
    Identity {
        subject: String,
        email: Option<String>,
        email_verified: bool,
    },
}

impl Principal {
    pub fn can(&self, action: Action) -> bool {
        match self {
            Principal::User { roles, .. } => match tenant_rule(action) {
                TenantRule::AnyMember => true,
                TenantRule::Roles(allowed) => roles.iter().any(|r| allowed.contains(r)),
            },
            Principal::Operator { .. } => operator_allowed(action),
            Principal::Identity { .. } => false,
        }
    }

    /// The guard every domain operation uses (resolvers never check permissions themselves).
    /// A partner-less identity gets FORBIDDEN too: it is signed in, it just has no partner yet.
    pub fn require(&self, action: Action) -> Result<(), AppError> {
        if self.can(action) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// [`Self::require`], then [`Self::scope`]: the partner an operation that needs `action`
    /// acts on.
    pub fn scope_for(&self, action: Action, requested: Option<Uuid>) -> Result<Uuid, AppError> {
        self.require(action)?;
        self.scope(requested)
    }

    pub fn partner_id(&self) -> Option<Uuid> {
        match self {
            Principal::User { partner_id, .. } => Some(*partner_id),
            _ => None,
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator { .. })
    }

    /// The partner a request acts on: a user's own; an operator names one explicitly.
    /// A user naming another partner gets NOT_FOUND, as if it did not exist.
    pub fn scope(&self, requested: Option<Uuid>) -> Result<Uuid, AppError> {
        match (self, requested) {
            (Principal::User { partner_id, .. }, None) => Ok(*partner_id),
            (Principal::User { partner_id, .. }, Some(p)) if p == *partner_id => Ok(p),
            (Principal::User { .. }, Some(_)) => Err(AppError::NotFound("partner")),
            (Principal::Operator { .. }, Some(p)) => Ok(p),
            (Principal::Operator { .. }, None) => Err(AppError::bad_input(
                "partnerId",
                "operators must name the partner",
            )),
            (Principal::Identity { .. }, _) => Err(AppError::NotFound("partner")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[TenantRole]) -> Principal {
        Principal::User {
            user_id: Uuid::nil(),
            partner_id: Uuid::nil(),
            roles: roles.to_vec(),
            email: "a@b.example".into(),
            subject: "s".into(),
        }
    }

    /// The PRODUCT.md 2.2 table, transcribed cell by cell: GA, UA, AA, MPA, member, OPERATOR.
    const MATRIX: &[(Action, [bool; 6])] = &[
        (A::ViewPartner, [true, true, true, true, true, true]),
        (A::ManageUsers, [true, true, false, false, false, false]),
        (
            A::EditLegalProfile,
            [true, false, false, false, false, false],
        ),
        (A::Purchase, [true, false, true, true, false, false]),
        (A::ViewInvoices, [true, false, false, true, false, true]),
        (A::UseBenefits, [true, false, false, true, false, false]),
        (A::AssignBenefits, [true, false, false, false, false, false]),
        (A::ViewSupportIds, [true, true, true, true, true, false]),
        (
            A::CreateSupportRequest,
            [true, true, true, true, true, false],
        ),
        (A::RequestRefund, [true, false, false, true, false, false]),
        (A::Operate, [false, false, false, false, false, true]),
        (A::ViewAuditLog, [true, false, false, false, false, true]),
    ];

    /// One principal per column of the matrix: GA, UA, AA, MPA, member, operator.
    fn columns() -> [Principal; 6] {
        [
            user(&[R::GlobalAdmin]),
            user(&[R::UserAdmin]),
            user(&[R::AdminAgent]),
            user(&[R::MpnPartnerAdmin]),
            user(&[]),
            Principal::Operator {
                operator_id: Uuid::nil(),
                subject: "op".into(),
                name: "Op".into(),
            },
        ]
    }

    #[test]
    fn the_whole_matrix() {
        assert_eq!(MATRIX.len(), Action::ALL.len(), "every action has a row");
        let principals = columns();
        for (action, row) in MATRIX {
            for (principal, expected) in principals.iter().zip(row) {
                assert_eq!(
                    principal.can(*action),
                    *expected,
                    "{action:?} for {principal:?}"
                );
                assert_eq!(principal.require(*action).is_ok(), *expected);
            }
        }
    }

    /// README's "Roles and permissions" table says what the code does, cell by cell.
    #[test]
    fn the_readme_role_table_is_the_matrix() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("## Roles and permissions")
            .nth(1)
            .expect("README has a Roles and permissions section");
        let principals = columns();
        for action in Action::ALL {
            let name = format!("| `{action:?}` |");
            let row = table
                .lines()
                .find(|l| l.starts_with(&name))
                .unwrap_or_else(|| panic!("README's role table has no row for {action:?}"));
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 8, "{row}");
            for (principal, cell) in principals.iter().zip(&cells[2..]) {
                assert_eq!(
                    *cell == "✓",
                    principal.can(*action),
                    "README says `{cell}` for {action:?} and {principal:?}"
                );
            }
        }
    }

    #[test]
    fn roles_add_up() {
        let p = user(&[R::UserAdmin, R::MpnPartnerAdmin]);
        assert!(p.can(A::ManageUsers));
        assert!(p.can(A::UseBenefits));
        assert!(!p.can(A::EditLegalProfile));
    }

    #[test]
    fn an_identity_without_partner_can_do_nothing_guarded() {
        let p = Principal::Identity {
            subject: "x".into(),
            email: None,
            email_verified: false,
        };
        for a in Action::ALL {
            assert!(!p.can(*a));
        }
    }

    #[test]
    fn foreign_partner_is_not_found() {
        let p = user(&[R::GlobalAdmin]);
        assert!(p.scope(None).is_ok());
        assert_eq!(
            p.scope(Some(Uuid::now_v7())).unwrap_err().code(),
            "NOT_FOUND"
        );
    }
}
