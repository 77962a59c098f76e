//! Parsed GraphQL documents, keyed by query text. Clients send the same few operations
//! over and over; parsing (pest) showed up in the server's profile, so each text is parsed
//! once per process. Validation still runs on every request.
//!
//! Only documents that an authenticated caller got through validation are kept (anonymous
//! callers could otherwise fill it with junk), and the cache is bounded by an estimate of
//! the bytes its parsed documents hold, not by their count.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::parser::types::ExecutableDocument;

/// Documents longer than this are parsed every time (they are rare and would bloat the cache).
const MAX_QUERY_BYTES: usize = 16 * 1024;
/// A parsed document holds far more than its text (a node with names and positions per
/// token): measured at up to ~120 bytes per byte of text for field-dense documents.
const PARSED_BYTES_PER_TEXT_BYTE: usize = 128;
/// Default budget: 32 MiB of parsed documents (about 256 KiB of query text).
pub const DEFAULT_BUDGET_BYTES: usize = 32 * 1024 * 1024;

pub struct ParseCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    docs: HashMap<String, ExecutableDocument>,
    bytes: usize,
}

impl Default for ParseCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET_BYTES)
    }
}

fn cost(query: &str) -> usize {
    query.len() * PARSED_BYTES_PER_TEXT_BYTE
}

impl ParseCache {
    pub fn new(budget: usize) -> Self {
        ParseCache {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The cached parse of `query`, if any.
    pub fn get(&self, query: &str) -> Option<ExecutableDocument> {
        if query.len() > MAX_QUERY_BYTES {
            return None;
        }
        let inner = self.inner.lock().ok()?;
        inner.docs.get(query).cloned()
    }

    /// Keeps `doc` (the parse of `query`); call only once it authenticated and validated.
    pub fn insert(&self, query: &str, doc: ExecutableDocument) {
        let cost = cost(query);
        if query.len() > MAX_QUERY_BYTES || cost > self.budget {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.docs.contains_key(query) {
            return;
        }
        // Crude but bounded: when full, start over (a client cycling through endless
        // distinct texts only costs itself the cache).
        if inner.bytes + cost > self.budget {
            inner.docs.clear();
            inner.bytes = 0;
        }
        inner.bytes += cost;
        inner.docs.insert(query.to_owned(), doc);
        metrics::gauge!("graphql_parse_cache_bytes").set(inner.bytes as f64);
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.docs.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn keeps_what_it_is_given_once() {
        let cache = ParseCache::default();
        cache.insert("{ me { id } }", parse("{ me { id } }"));
        cache.insert("{ me { id } }", parse("{ me { id } }"));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("{ me { id } }").is_some());
        assert!(cache.get("{ other }").is_none());
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let cache = ParseCache::new(64 * 1024);
        for i in 0..2000 {
            let q = format!("{{ a{i}: me {{ id }} }}");
            cache.insert(&q, parse(&q));
            assert!(cache.bytes() <= 64 * 1024);
        }
        let big = format!("{{ {} }}", "me { id } ".repeat(2000));
        cache.insert(&big, parse(&big));
        assert!(cache.get(&big).is_none(), "over MAX_QUERY_BYTES");
    }
}
