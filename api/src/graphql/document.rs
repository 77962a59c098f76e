//! What the edge needs to know about a parsed document before it runs: whether it asks
//! only for introspection (so it may be as deep as the standard introspection query), and
//! how many `__schema` / `__type` fields it holds (each returns the whole schema).

use std::collections::HashSet;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The operation that would run selects only `__`-prefixed fields at its root, and
    /// at least one of them is `__schema` or `__type`.
    pub introspection_only: bool,
    /// `__schema` and `__type` fields anywhere in the document (operations and fragments).
    pub introspection_fields: usize,
}

fn is_schema_field(name: &str) -> bool {
    name == "__schema" || name == "__type"
}

impl Shape {
    pub fn of(doc: &ExecutableDocument, operation_name: Option<&str>) -> Self {
        let mut introspection_fields = 0;
        for (_, op) in doc.operations.iter() {
            introspection_fields += count(&op.node.selection_set.node);
        }
        for fragment in doc.fragments.values() {
            introspection_fields += count(&fragment.node.selection_set.node);
        }
        let introspection_only = selected(doc, operation_name).is_some_and(|op| {
            let mut seen = HashSet::new();
            let mut names = Vec::new();
            root_fields(doc, &op.selection_set.node, &mut seen, &mut names);
            !names.is_empty()
                && names.iter().all(|n| n.starts_with("__"))
                && names.iter().any(|n| is_schema_field(n))
        });
        Shape {
            introspection_only,
            introspection_fields,
        }
    }
}

fn selected<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        _ => None,
    }
}

fn count(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(is_schema_field(f.node.name.node.as_str()))
                    + count(&f.node.selection_set.node)
            }
            Selection::InlineFragment(i) => count(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// The names of the root fields, through fragments (each fragment entered once, so a
/// cycle cannot loop; validation refuses cycles afterwards anyway).
fn root_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    seen: &mut HashSet<&'a str>,
    names: &mut Vec<&'a str>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => names.push(f.node.name.node.as_str()),
            Selection::InlineFragment(i) => {
                root_fields(doc, &i.node.selection_set.node, seen, names)
            }
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                if seen.insert(name)
                    && let Some(fragment) = doc.fragments.get(&s.node.fragment_name.node)
                {
                    root_fields(doc, &fragment.node.selection_set.node, seen, names);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(q: &str) -> Shape {
        Shape::of(&async_graphql::parser::parse_query(q).unwrap(), None)
    }

    #[test]
    fn tells_introspection_from_data() {
        assert!(shape("{ __schema { types { name } } }").introspection_only);
        assert!(
            shape("query Q { ...F } fragment F on Query { __type(name: \"X\") { name } }")
                .introspection_only
        );
        assert!(!shape("{ __schema { types { name } } me { id } }").introspection_only);
        assert!(!shape("{ __typename }").introspection_only);
        assert!(!shape("{ me { id } }").introspection_only);
        assert!(
            !shape("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A me { id } }")
                .introspection_only
        );
    }

    #[test]
    fn counts_schema_fields_everywhere() {
        assert_eq!(shape("{ a: __schema { types { name } } b: __schema { types { name } } c: __type(name: \"Q\") { name } }").introspection_fields, 3);
        assert_eq!(
            shape("{ ...F } fragment F on Query { __schema { queryType { name } } }")
                .introspection_fields,
            1
        );
    }
}
