//! Relay connections over keyset pagination. Cursors are opaque (base64 of the row's UUIDv7);
//! rows come newest first, so "after" means "older than".

use std::future::Future;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object, OutputType};
use base64::Engine;
use gateway_domain::AppError;
use uuid::Uuid;

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

pub fn decode_cursor(after: Option<&str>) -> Result<Option<Uuid>, AppError> {
    let Some(raw) = after else { return Ok(None) };
    let bad = || AppError::bad_input("after", "invalid cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    Uuid::parse_str(&text).map(Some).map_err(|_| bad())
}

pub fn encode_cursor(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

pub fn page_size(first: Option<i32>) -> Result<i64, AppError> {
    match first.unwrap_or(DEFAULT_PAGE) {
        n if (1..=MAX_PAGE).contains(&n) => Ok(n as i64),
        _ => Err(AppError::bad_input(
            "first",
            format!("first must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// A connection's `totalCount` (Relay's convention, as GitHub's API has it): counted only when
/// the document selects it ([`total_count`]), so a page costs no count otherwise.
pub struct TotalCount(pub Option<i64>);

#[Object]
impl TotalCount {
    /// How many items the whole list holds, over every page (the filters apply; the cursor
    /// and page size do not).
    async fn total_count(&self) -> async_graphql::Result<i64> {
        self.0
            .ok_or_else(|| AppError::internal("totalCount selected but not counted").into())
    }
}

/// Counts with `count` when the current field's selection asks for `totalCount`.
pub async fn total_count<F>(
    ctx: &Context<'_>,
    count: impl FnOnce() -> F,
) -> async_graphql::Result<TotalCount>
where
    F: Future<Output = Result<i64, AppError>>,
{
    if ctx.look_ahead().field("totalCount").exists() {
        Ok(TotalCount(Some(count().await?)))
    } else {
        Ok(TotalCount(None))
    }
}

/// Builds the connection from `limit + 1` fetched rows (the extra one tells `hasNextPage`).
pub fn connection<T: OutputType>(
    mut rows: Vec<T>,
    limit: i64,
    has_previous: bool,
    total: TotalCount,
    id_of: impl Fn(&T) -> Uuid,
) -> Connection<String, T, TotalCount> {
    let has_next = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut c = Connection::with_additional_fields(has_previous, has_next, total);
    c.edges.extend(
        rows.into_iter()
            .map(|r| Edge::new(encode_cursor(id_of(&r)), r)),
    );
    c
}

/// A connection over a short list read whole (a partner's users, its cards): `all` newest
/// first; the page and `totalCount` are cut from it in memory.
pub fn from_list<T: OutputType>(
    all: Vec<T>,
    first: Option<i32>,
    after: Option<&str>,
    id_of: impl Fn(&T) -> Uuid,
) -> Result<Connection<String, T, TotalCount>, AppError> {
    let limit = page_size(first)?;
    let before = decode_cursor(after)?;
    let total = all.len() as i64;
    let rows: Vec<T> = all
        .into_iter()
        .filter(|r| before.is_none_or(|b| id_of(r) < b))
        .take(limit as usize + 1)
        .collect();
    Ok(connection(
        rows,
        limit,
        before.is_some(),
        TotalCount(Some(total)),
        id_of,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(Some(&encode_cursor(id))).unwrap(), Some(id));
        assert_eq!(
            decode_cursor(Some("%%%")).unwrap_err().code(),
            "BAD_USER_INPUT"
        );
        assert_eq!(page_size(Some(0)).unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(page_size(Some(101)).unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(page_size(None).unwrap(), 20);
    }
}
