//! Parsed GraphQL documents, kept by their text. A frontend sends the same few documents over
//! and over (with other variables); parsing one took about a tenth of the api's CPU per
//! dashboard request (docs/BENCHMARKS.md, item 16). A request whose text was seen before gets
//! the parsed document (a copy), so async-graphql only validates and executes it.
//!
//! Validation, too, is done in full once per document (item 28): a request without variables
//! whose document and operation have already run without errors is known to pass the full
//! validation, whose rules depend on nothing else (the schema, the document, the operation
//! name and the variables). It runs on the schema with async-graphql's fast validation, which
//! still computes and limits the query's depth and complexity. Requests with variables are
//! always validated in full: some rules read the variables' values.
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

struct Kept {
    doc: Arc<ExecutableDocument>,
    /// Operations (by the request's operation name) that ran without variables and without
    /// errors: they pass the full validation.
    passed: Vec<Option<String>>,
}

#[derive(Default)]
pub struct Documents {
    kept: Mutex<HashMap<String, Kept>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How a prepared batch must be validated.
#[derive(Debug, PartialEq, Eq)]
pub enum Validation {
    /// In full ([`Documents::passed`] is not needed: a batch, variables, or a text not kept).
    Full,
    /// In full, the first time for this document and operation without variables: tell
    /// [`Documents::passed`] if it runs without errors.
    First {
        text: String,
        operation: Option<String>,
    },
    /// Known to pass the full validation: the fast one is enough.
    Passed,
}

impl Documents {
    /// Gives every request of the batch its parsed document: a copy of the kept one, or
    /// parsed now and kept. Says how the batch must be validated.
    pub fn prepare(&self, batch: &mut BatchRequest) -> Validation {
        match batch {
            BatchRequest::Single(r) => self.prepare_one(r),
            BatchRequest::Batch(list) => {
                list.iter_mut().for_each(|r| {
                    self.prepare_one(r);
                });
                Validation::Full
            }
        }
    }

    fn prepare_one(&self, request: &mut Request) -> Validation {
        if request.query.len() > MAX_TEXT {
            return Validation::Full;
        }
        let no_variables = request.variables.is_empty();
        let kept = self.lock().get(&request.query).map(|k| {
            let passed = no_variables && k.passed.contains(&request.operation_name);
            (k.doc.clone(), passed)
        });
        let validation = if !no_variables {
            Validation::Full
        } else if kept.as_ref().is_some_and(|(_, passed)| *passed) {
            Validation::Passed
        } else {
            Validation::First {
                text: request.query.clone(),
                operation: request.operation_name.clone(),
            }
        };
        if let Some((doc, _)) = kept {
            self.hits.fetch_add(1, Ordering::Relaxed);
            request.set_parsed_query((*doc).clone());
            return validation;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Ok(doc) = request.parsed_query() else {
            return Validation::Full;
        };
        let doc = Arc::new(doc.clone());
        let mut kept = self.lock();
        if kept.len() >= CAPACITY {
            kept.clear();
        }
        kept.insert(
            request.query.clone(),
            Kept {
                doc,
                passed: Vec::new(),
            },
        );
        validation
    }

    /// A request prepared as [`Validation::First`] ran without errors: its document and
    /// operation pass the full validation.
    pub fn passed(&self, text: &str, operation: Option<String>) {
        if let Some(k) = self.lock().get_mut(text) {
            if !k.passed.contains(&operation) {
                k.passed.push(operation);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
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
    fn only_a_variable_free_operation_that_ran_without_errors_skips_the_full_validation() {
        let docs = Documents::default();
        let q = "query A { a } query B { b }";
        let named = |name: &str| BatchRequest::Single(Request::new(q).operation_name(name));
        let first = docs.prepare(&mut named("A"));
        assert_eq!(
            first,
            Validation::First {
                text: q.into(),
                operation: Some("A".into())
            }
        );
        // Until it is reported to have run without errors, it is validated in full.
        assert!(matches!(
            docs.prepare(&mut named("A")),
            Validation::First { .. }
        ));
        docs.passed(q, Some("A".into()));
        assert_eq!(docs.prepare(&mut named("A")), Validation::Passed);
        // Another operation of the same document, or none named, has not passed.
        assert!(matches!(
            docs.prepare(&mut named("B")),
            Validation::First { .. }
        ));
        assert!(matches!(
            docs.prepare(&mut single(q)),
            Validation::First { .. }
        ));
        // Variables: always in full, passed or not (some rules read their values).
        let mut with_vars = Request::new(q).operation_name("A");
        with_vars.variables = async_graphql::Variables::from_json(serde_json::json!({"n": 1}));
        assert_eq!(
            docs.prepare(&mut BatchRequest::Single(with_vars)),
            Validation::Full
        );
        // A batch: in full.
        let batch = vec![Request::new(q).operation_name("A")];
        assert_eq!(
            docs.prepare(&mut BatchRequest::Batch(batch)),
            Validation::Full
        );
        // Emptied when full: what passed is forgotten with the document.
        for i in 0..CAPACITY {
            docs.prepare(&mut single(&format!("{{ field{i} }}")));
        }
        assert!(matches!(
            docs.prepare(&mut named("A")),
            Validation::First { .. }
        ));
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
