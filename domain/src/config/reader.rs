//! Reading variables with defaults and bounds, collecting every problem.

use std::collections::BTreeMap;
use std::time::Duration;

/// Reads variables from a map (the process environment in production, a literal map in tests)
/// and collects every problem instead of stopping at the first.
pub(super) struct Reader<'a> {
    vars: &'a BTreeMap<String, String>,
    pub(super) errors: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(vars: &'a BTreeMap<String, String>) -> Self {
        Reader {
            vars,
            errors: Vec::new(),
        }
    }

    /// Records a problem; reading goes on, so every problem is reported at once.
    pub(super) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    pub(super) fn opt(&self, key: &str) -> Option<String> {
        self.vars
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn required(&mut self, key: &str, hint: &str) -> String {
        self.opt(key).unwrap_or_else(|| {
            self.errors.push(format!("{key} is required ({hint})"));
            String::new()
        })
    }

    pub(super) fn string(&self, key: &str, default: &str) -> String {
        self.opt(key).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn parse<T>(&mut self, key: &str, default: T, min: T) -> T
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match self.opt(key) {
            None => default,
            Some(raw) => match raw.parse::<T>() {
                Ok(v) if v >= min => v,
                Ok(_) => {
                    self.errors
                        .push(format!("{key} must be at least {min}, got `{raw}`"));
                    default
                }
                Err(_) => {
                    self.errors
                        .push(format!("{key} must be a number, got `{raw}`"));
                    default
                }
            },
        }
    }

    pub(super) fn flag(&mut self, key: &str, default: bool) -> bool {
        match self.opt(key).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                self.errors
                    .push(format!("{key} must be true or false, got `{other}`"));
                default
            }
        }
    }

    pub(super) fn millis(&mut self, key: &str, default: u64) -> Duration {
        Duration::from_millis(self.parse(key, default, 1))
    }

    pub(super) fn secs(&mut self, key: &str, default: u64) -> Duration {
        Duration::from_secs(self.parse(key, default, 1))
    }
}
