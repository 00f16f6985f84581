//! Input rules shared by every mutation: work email, phone, country, text lengths.
//! Pure functions; errors name the offending field.

use crate::error::AppError;

/// Local parts that address a role, not a person (PRODUCT.md 2.1).
const ROLE_LOCAL_PARTS: &[&str] = &[
    "info",
    "admin",
    "administrator",
    "marketing",
    "sales",
    "support",
    "noreply",
    "no-reply",
    "webmaster",
    "postmaster",
    "hostmaster",
    "contact",
    "help",
    "billing",
    "office",
];

/// Free-mail domains refused for a work email.
const FREE_MAIL_DOMAINS: &[&str] = &[
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "gmx.com",
    "gmx.net",
    "mail.com",
    "protonmail.com",
    "proton.me",
    "zoho.com",
    "yandex.com",
    "yandex.ru",
    "qq.com",
    "163.com",
    "126.com",
    "web.de",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "yahoo.co.jp",
    "outlook.jp",
];

/// ISO 3166-1 alpha-2 codes.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR \
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ \
FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE \
JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR \
MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU \
RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG \
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// A syntactically valid address, lower-cased. Deliberately strict: one `@`, a dotted domain
/// of letters, digits and hyphens, no spaces or quotes.
pub fn email(field: &str, raw: &str) -> Result<String, AppError> {
    let value = raw.trim().to_ascii_lowercase();
    let bad = || {
        AppError::bad_input(
            field,
            format!("`{}` is not a valid email address", raw.trim()),
        )
    };
    if value.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = value.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    if local_ok && domain_ok {
        Ok(value)
    } else {
        Err(bad())
    }
}

/// A person's work address: valid, not a role address, not a free-mail domain.
pub fn work_email(field: &str, raw: &str) -> Result<String, AppError> {
    let value = email(field, raw)?;
    let (local, domain) = value.split_once('@').expect("validated");
    let local_base = local.split('+').next().unwrap_or(local);
    if ROLE_LOCAL_PARTS.contains(&local_base) {
        return Err(AppError::bad_input(
            field,
            format!("`{local}@` is a role address; use a person's work email"),
        ));
    }
    if FREE_MAIL_DOMAINS.contains(&domain) {
        return Err(AppError::bad_input(
            field,
            format!("`{domain}` is a personal email provider; use a work email"),
        ));
    }
    Ok(value)
}

/// E.164: `+`, country code not starting with 0, 8 to 15 digits in all.
pub fn phone_e164(field: &str, raw: &str) -> Result<String, AppError> {
    let value: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = value.strip_prefix('+').unwrap_or("");
    let ok = digits.len() >= 8
        && digits.len() <= 15
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            field,
            "phone must be in E.164 form, for example +14255550100",
        ))
    }
}

pub fn country(field: &str, raw: &str) -> Result<String, AppError> {
    let value = raw.trim().to_ascii_uppercase();
    if value.len() == 2 && COUNTRIES.split_whitespace().any(|c| c == value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            field,
            format!("`{}` is not an ISO 3166-1 alpha-2 country code", raw.trim()),
        ))
    }
}

/// Trimmed, non-empty, at most `max` characters, no control characters.
/// An id sent by a client. A malformed one cannot name anything the caller may see.
pub fn uuid_id(field: &str, raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| AppError::bad_input(field, format!("`{raw}` is not a valid id")))
}

pub fn text(field: &str, raw: &str, max: usize) -> Result<String, AppError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::bad_input(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(value.to_owned())
}

pub fn optional_text(
    field: &str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_emails() {
        assert_eq!(
            work_email("e", " Ada.Lovelace@Contoso.com ").unwrap(),
            "ada.lovelace@contoso.com"
        );
        for bad in [
            "info@contoso.com",
            "admin@contoso.com",
            "marketing@contoso.com",
            "sales@contoso.com",
            "support@contoso.com",
            "noreply@contoso.com",
            "noreply+x@contoso.com",
        ] {
            let e = work_email("e", bad).unwrap_err();
            assert!(e.message().contains("role address"), "{bad}: {e:?}");
        }
        for bad in [
            "ada@gmail.com",
            "ada@outlook.com",
            "ada@hotmail.com",
            "ada@yahoo.com",
        ] {
            let e = work_email("e", bad).unwrap_err();
            assert!(e.message().contains("personal email"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn malformed_emails() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@contoso.com",
            "ada@contoso",
            "ada@@contoso.com",
            "a b@contoso.com",
            "ada@contoso..com",
            ".ada@contoso.com",
            "ada@-contoso.com",
            "ada@contoso.c0m",
        ] {
            assert_eq!(
                email("email", bad).unwrap_err().code(),
                "BAD_USER_INPUT",
                "{bad}"
            );
        }
    }

    #[test]
    fn phones() {
        assert_eq!(phone_e164("p", "+1 425-555-0100").unwrap(), "+14255550100");
        for bad in [
            "4255550100",
            "+0425555010",
            "+1",
            "+1425555010012345",
            "+1425abc0100",
        ] {
            assert!(phone_e164("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countries() {
        assert_eq!(country("c", "us").unwrap(), "US");
        assert!(country("c", "XX").is_err());
        assert!(country("c", "USA").is_err());
    }

    #[test]
    fn texts() {
        assert!(text("name", "  ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert_eq!(text("name", " Contoso ", 10).unwrap(), "Contoso");
    }
}
