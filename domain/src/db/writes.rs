//! Several writes in one statement: `WITH w0 AS (<write>), w1 AS (<write>) <main>`.
//!
//! Postgres runs a statement all or nothing, also outside a transaction, so writes that must
//! go in together need no BEGIN and COMMIT when they fit one statement: one round trip and
//! one statement instead of four or more (a purchase's reservation, docs/BENCHMARKS.md item
//! 25). The writes must not read each other's rows: all parts of the statement see the same
//! snapshot, and their order is Postgres' to choose. Foreign keys between them hold, as
//! Postgres checks them at the end of the statement.
//!
//! The writes are diesel statements (INSERT, UPDATE, DELETE) without RETURNING; `main` is any
//! query, and what it returns is what the statement returns. Bind parameters are numbered
//! across all parts. Wrap the result in [`ReuseDsl::reuse`](super::reuse::ReuseDsl) to keep
//! it prepared when its text takes few shapes.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A write that goes into [`with_writes`].
pub type Write<'a> = Box<dyn QueryFragment<Pg> + Send + 'a>;

/// See the module doc.
pub struct WithWrites<'a, M> {
    writes: Vec<Write<'a>>,
    main: M,
}

/// `main`, with `writes` done by the same statement.
pub fn with_writes<M>(writes: Vec<Write<'_>>, main: M) -> WithWrites<'_, M> {
    WithWrites { writes, main }
}

impl<M: QueryFragment<Pg>> QueryFragment<Pg> for WithWrites<'_, M> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for (i, write) in self.writes.iter().enumerate() {
            out.push_sql(if i == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("w{i} AS ("));
            write.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        if !self.writes.is_empty() {
            out.push_sql(" ");
        }
        self.main.walk_ast(out.reborrow())
    }
}

impl<M> QueryId for WithWrites<'_, M> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M: Query> Query for WithWrites<'_, M> {
    type SqlType = M::SqlType;
}
