//! Email templates: one folder per email under domain/templates/, each with `subject.txt`,
//! `body.txt` and `body.html` (HTML is auto-escaped).

use minijinja::Environment;
use serde::Serialize;
use std::sync::OnceLock;

macro_rules! templates {
    ($($name:literal),+ $(,)?) => {
        &[$(
            (concat!($name, "/subject.txt"), include_str!(concat!("../../templates/", $name, "/subject.txt"))),
            (concat!($name, "/body.txt"), include_str!(concat!("../../templates/", $name, "/body.txt"))),
            (concat!($name, "/body.html"), include_str!(concat!("../../templates/", $name, "/body.html"))),
        )+]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "verification",
    "invitation",
    "order_receipt",
    "bank_transfer_instructions",
    "renewal_failed",
    "renewal_reminder",
    "order_expired",
    "subscription_lapsed",
    "refund_processed",
    "refund_failed",
    "marketing_contact_removed",
    "gtm_instructions",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Verification,
    Invitation,
    OrderReceipt,
    BankTransferInstructions,
    RenewalFailed,
    RenewalReminder,
    OrderExpired,
    SubscriptionLapsed,
    RefundProcessed,
    RefundFailed,
    MarketingContactRemoved,
    GtmInstructions,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Verification => "verification",
            Template::Invitation => "invitation",
            Template::OrderReceipt => "order_receipt",
            Template::BankTransferInstructions => "bank_transfer_instructions",
            Template::RenewalFailed => "renewal_failed",
            Template::RenewalReminder => "renewal_reminder",
            Template::OrderExpired => "order_expired",
            Template::SubscriptionLapsed => "subscription_lapsed",
            Template::RefundProcessed => "refund_processed",
            Template::RefundFailed => "refund_failed",
            Template::MarketingContactRemoved => "marketing_contact_removed",
            Template::GtmInstructions => "gtm_instructions",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("email templates parse");
        }
        env
    })
}

pub fn render(template: Template, ctx: &impl Serialize) -> anyhow::Result<Rendered> {
    let env = env();
    let get = |part: &str| -> anyhow::Result<String> {
        Ok(env
            .get_template(&format!("{}/{part}", template.name()))?
            .render(ctx)?)
    };
    Ok(Rendered {
        subject: get("subject.txt")?.trim().to_owned(),
        text: get("body.txt")?,
        html: get("body.html")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_renders_text_and_escaped_html() {
        let r = render(
            Template::Verification,
            &serde_json::json!({"first_name": "Ada", "legal_name": "Contoso <Ltd>", "link": "https://p/x?token=abc",
                                "expires_at": "2026-11-24 10:00 UTC", "mpn_id": "1234567"}),
        )
        .unwrap();
        assert_eq!(
            r.subject,
            "Verify your email for Contoso <Ltd> in the Partner Network"
        );
        assert!(r.text.contains("https://p/x?token=abc"));
        assert!(r.html.contains("Contoso &lt;Ltd&gt;"), "{}", r.html);
    }

    #[test]
    fn a_missing_variable_is_an_error_not_a_blank() {
        assert!(render(
            Template::Invitation,
            &serde_json::json!({"legal_name": "x"})
        )
        .is_err());
    }
}
