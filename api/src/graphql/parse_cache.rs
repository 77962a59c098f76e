//! Parsed GraphQL documents, keyed by query text. Clients send the same few operations
//! over and over; parsing (pest) showed up in the server's profile, so each text is parsed
//! once per process. Validation still runs on every request.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// Documents longer than this are parsed every time (they are rare and would bloat the cache).
const MAX_QUERY_BYTES: usize = 16 * 1024;
const MAX_ENTRIES: usize = 1000;

#[derive(Default)]
pub struct ParseCache {
    docs: Mutex<HashMap<String, ExecutableDocument>>,
}

impl ParseCache {
    /// Attaches the cached parse of `request.query`, parsing and caching it on a miss.
    /// Unparsable queries are left for execution to report.
    pub fn attach(&self, mut request: Request) -> Request {
        if request.query.len() > MAX_QUERY_BYTES {
            return request;
        }
        if let Ok(docs) = self.docs.lock()
            && let Some(doc) = docs.get(&request.query)
        {
            request.set_parsed_query(doc.clone());
            return request;
        }
        let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
            return request;
        };
        if let Ok(mut docs) = self.docs.lock() {
            // Crude but bounded: a client generating endless distinct texts only resets the cache.
            if docs.len() >= MAX_ENTRIES {
                docs.clear();
            }
            docs.insert(request.query.clone(), doc.clone());
        }
        request.set_parsed_query(doc);
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_valid_documents_only() {
        let cache = ParseCache::default();
        let _ = cache.attach(Request::new("{ me { id } }"));
        let _ = cache.attach(Request::new("{ me { id } }"));
        let _ = cache.attach(Request::new("{ broken"));
        assert_eq!(cache.docs.lock().unwrap().len(), 1);
    }

    #[test]
    fn stays_bounded() {
        let cache = ParseCache::default();
        for i in 0..(MAX_ENTRIES + 5) {
            let _ = cache.attach(Request::new(format!("{{ a{i}: me {{ id }} }}")));
        }
        assert!(cache.docs.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
