//! A `jsonb` column kept as its JSON text: read without building a `serde_json::Value`, and
//! parsed into its own type only where it is used. A dashboard lists invoices without their
//! lines or billing address; building both as `Value`s for every row read took about 2.5 % of
//! the api's CPU per dashboard request (docs/BENCHMARKS.md, item 28).

use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version byte of Postgres' binary `jsonb` format, followed by the JSON text.
const JSONB_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub struct JsonText(String);

impl JsonText {
    /// The JSON text of `value`.
    pub fn of<T: Serialize>(value: &T) -> serde_json::Result<Self> {
        serde_json::to_string(value).map(Self)
    }

    /// Parses the text as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromSql<Jsonb, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb encoding version".into()),
        }
    }
}

impl ToSql<Jsonb, Pg> for JsonText {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::JsonText;

    #[test]
    fn a_value_written_as_text_parses_back_the_same() {
        let lines = vec![("Action Pack", 1, 47_500_i64)];
        let text = JsonText::of(&lines).unwrap();
        assert_eq!(text.as_str(), r#"[["Action Pack",1,47500]]"#);
        let back: Vec<(String, i32, i64)> = text.parse().unwrap();
        assert_eq!(back, vec![("Action Pack".to_owned(), 1, 47_500)]);
        assert!(
            text.parse::<Vec<String>>().is_err(),
            "the wrong shape is an error"
        );
    }
}
