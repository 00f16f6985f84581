//! Prepared statements kept for the connection's life.
//!
//! diesel caches the prepared statement of a query whose SQL text cannot vary (most SELECTs),
//! but it prepares every UPDATE, every INSERT with a defaulted column and every raw
//! `sql_query` anew on each call and closes it afterwards: one more round trip (Parse,
//! Describe) and a parse of the text, each time. A purchase sent 12 such statements and its
//! sandbox charge 2 more (docs/BENCHMARKS.md, item 15). Wrapped in [`Reuse`], a statement is
//! cached on the connection under its SQL text and bind types, like diesel's own cache does
//! for SELECTs built at run time, so the next call with the same text only binds and runs.
//!
//! Use it where the text takes a few shapes only: fixed raw SQL (arrays bound with `unnest`
//! or `= ANY`), one-row INSERTs, UPDATEs whose changeset has a fixed set of columns, INSERTs
//! of a few rows whose count the catalog bounds. Not for multi-row INSERTs of any length:
//! every length is another text, and each would stay prepared as long as the connection.
//!
//! Like diesel's cached SELECTs, a kept statement may run on a generic plan after five runs,
//! made from the statistics of that moment; a plan made while a table was empty stays a
//! sequential scan until the table is analyzed (docs/BENCHMARKS.md, items 16 and 19).

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// Multi-row INSERTs of more rows than this are prepared each time, as diesel does.
pub const MAX_ROWS_KEPT: usize = 16;

/// A query whose prepared statement the connection keeps (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Reuse<Q> {
    query: Q,
    keep: bool,
}

/// `.reuse()` on any query (in [`crate::db::prelude`]).
pub trait ReuseDsl: Sized {
    /// Keep this statement prepared: its text takes a few shapes only.
    fn reuse(self) -> Reuse<Self> {
        Reuse {
            query: self,
            keep: true,
        }
    }

    /// For an INSERT of `rows` rows: kept up to [`MAX_ROWS_KEPT`] rows (each count is a text
    /// of its own), otherwise prepared for this call only.
    fn reuse_for_rows(self, rows: usize) -> Reuse<Self> {
        Reuse {
            query: self,
            keep: rows <= MAX_ROWS_KEPT,
        }
    }
}

impl<Q: QueryFragment<Pg>> ReuseDsl for Q {}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Reuse<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    /// The cache keys it by its SQL text and bind types (no static query id, below), so a
    /// text that differs (a DEFAULT for a missing value, another row count) is another entry.
    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        if self.keep {
            Ok(true)
        } else {
            self.query.is_safe_to_cache_prepared(backend)
        }
    }
}

impl<Q> QueryId for Reuse<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Reuse<Q> {
    type SqlType = Q::SqlType;
}
