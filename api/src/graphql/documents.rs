//! Parsed GraphQL documents, kept by their text. A frontend sends the same few documents over
//! and over (with other variables); parsing one took about a tenth of the api's CPU per
//! dashboard request (docs/BENCHMARKS.md, item 16). A request whose text was seen before gets
//! the parsed document (a copy), so async-graphql only validates and executes it.
//!
//! Bounded: documents longer than [`MAX_TEXT`] are not kept, and when [`CAPACITY`] documents
//! are kept the next new one empties the store first (a client sending ever-new documents
//! costs the parse it would have cost anyway, and no memory). A text that does not parse is
//! not kept: async-graphql parses it again and reports the error as always.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{BatchRequest, Request};

/// Documents kept at most.
pub const CAPACITY: usize = 512;
/// Longest text kept, in bytes.
pub const MAX_TEXT: usize = 16 * 1024;

#[derive(Default)]
pub struct Documents {
    kept: Mutex<HashMap<String, Arc<ExecutableDocument>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Documents {
    /// Gives every request of the batch its parsed document: a copy of the kept one, or
    /// parsed now and kept.
    pub fn prepare(&self, batch: &mut BatchRequest) {
        match batch {
            BatchRequest::Single(r) => self.prepare_one(r),
            BatchRequest::Batch(list) => list.iter_mut().for_each(|r| self.prepare_one(r)),
        }
    }

    fn prepare_one(&self, request: &mut Request) {
        if request.query.len() > MAX_TEXT {
            return;
        }
        let kept = self.lock().get(&request.query).cloned();
        if let Some(doc) = kept {
            self.hits.fetch_add(1, Ordering::Relaxed);
            request.set_parsed_query((*doc).clone());
            return;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Ok(doc) = request.parsed_query() else {
            return;
        };
        let doc = Arc::new(doc.clone());
        let mut kept = self.lock();
        if kept.len() >= CAPACITY {
            kept.clear();
        }
        kept.insert(request.query.clone(), doc);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ExecutableDocument>>> {
        // A panic elsewhere while holding it leaves a map that is still whole.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (requests served from a kept document, requests parsed, documents kept)
    pub fn counts(&self) -> (u64, u64, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.lock().len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(query: &str) -> BatchRequest {
        BatchRequest::Single(Request::new(query))
    }

    #[test]
    fn a_repeated_text_is_parsed_once_and_broken_or_huge_texts_are_not_kept() {
        let docs = Documents::default();
        let q = "query Q($n: Int) { a(first: $n) { b } }";
        docs.prepare(&mut single(q));
        let mut again = single(q);
        docs.prepare(&mut again);
        assert_eq!(docs.counts(), (1, 1, 1));
        let BatchRequest::Single(mut again) = again else {
            unreachable!()
        };
        // The copy is the document of that text.
        let doc = again.parsed_query().unwrap();
        assert_eq!(doc.operations.iter().count(), 1);

        docs.prepare(&mut single("query { a { "));
        docs.prepare(&mut single(&format!("{{ a {} }}", " ".repeat(MAX_TEXT))));
        assert_eq!(
            docs.counts(),
            (1, 2, 1),
            "broken: parsed, not kept; huge: skipped"
        );

        let mut batch = BatchRequest::Batch(vec![Request::new(q), Request::new("{ c }")]);
        docs.prepare(&mut batch);
        assert_eq!(docs.counts(), (2, 3, 2));
    }

    #[test]
    fn the_store_never_holds_more_than_its_capacity() {
        let docs = Documents::default();
        for i in 0..CAPACITY + 10 {
            docs.prepare(&mut single(&format!("{{ field{i} }}")));
        }
        let (_, misses, kept) = docs.counts();
        assert_eq!(misses as usize, CAPACITY + 10);
        assert_eq!(kept, 10, "emptied when full, then kept the newest");
    }
}
