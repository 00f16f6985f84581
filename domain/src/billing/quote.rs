//! Prices, the upgrade discount and tax, in integer minor units (no floating point).

use serde::Serialize;

/// 25% off the first Gold term when upgrading from Silver (PRODUCT.md 2.3).
pub const UPGRADE_DISCOUNT_PERCENT: i64 = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub price_minor: i64,
    pub discount_minor: i64,
    /// Basis points: 2000 = 20%.
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// `amount × numerator / denominator`, rounded half up (amounts are never negative).
fn share(amount: i64, numerator: i64, denominator: i64) -> i64 {
    (amount * numerator + denominator / 2) / denominator
}

/// Value-added tax charged on partner purchases, by billing country. Countries not listed are
/// billed without tax (the partner self-assesses, as for US partners).
pub fn tax_rate_bp(country: &str) -> i32 {
    match country {
        "AT" | "FR" | "GB" | "BG" | "EE" | "SK" => 2000,
        "DE" => 1900,
        "NL" | "ES" | "BE" | "CZ" | "LT" | "LV" => 2100,
        "IE" | "PL" | "PT" => 2300,
        "IT" | "SI" => 2200,
        "SE" | "DK" => 2500,
        "FI" => 2550,
        "NO" => 2500,
        "CH" => 810,
        "JP" | "AU" => 1000,
        "NZ" => 1500,
        "IN" => 1800,
        "CA" => 500,
        _ => 0,
    }
}

pub fn quote(price_minor: i64, country: &str, upgrade_discount: bool) -> Quote {
    let discount_minor = if upgrade_discount {
        share(price_minor, UPGRADE_DISCOUNT_PERCENT, 100)
    } else {
        0
    };
    let taxable = price_minor - discount_minor;
    let tax_rate_bp = tax_rate_bp(country);
    let tax_minor = share(taxable, tax_rate_bp as i64, 10_000);
    Quote {
        price_minor,
        discount_minor,
        tax_rate_bp,
        tax_minor,
        total_minor: taxable + tax_minor,
    }
}

/// "USD 1,234.50" for emails, invoices and the API's `formatted` fields.
pub fn format_money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{currency} {grouped}.{:02}", abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_pack_in_the_us_has_no_tax() {
        let q = quote(47500, "US", false);
        assert_eq!(
            (q.discount_minor, q.tax_minor, q.total_minor),
            (0, 0, 47500)
        );
    }

    #[test]
    fn gold_upgrade_gets_a_quarter_off_before_tax() {
        let q = quote(530000, "DE", true);
        assert_eq!(q.discount_minor, 132500);
        assert_eq!(q.tax_minor, 75525); // 19% of 397,500
        assert_eq!(q.total_minor, 530000 - 132500 + 75525);
    }

    #[test]
    fn tax_rounds_half_up() {
        // 20% of 0.03 = 0.006 → 0.01; 20% of 0.02 = 0.004 → 0.00
        assert_eq!(quote(3, "GB", false).tax_minor, 1);
        assert_eq!(quote(2, "GB", false).tax_minor, 0);
    }

    #[test]
    fn money_is_formatted_with_groups() {
        assert_eq!(format_money(47500, "USD"), "USD 475.00");
        assert_eq!(format_money(123456789, "EUR"), "EUR 1,234,567.89");
        assert_eq!(format_money(5, "USD"), "USD 0.05");
    }
}
