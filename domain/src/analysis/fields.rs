//! A tenant's custom extraction fields: what the analyzers are asked to fill in from each
//! call (a meeting time, a budget, objections ...), validated before they are stored.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::types::FieldType;

/// At most this many fields per tenant, so the schema sent to an LLM stays small.
pub const MAX_FIELDS: usize = 30;
const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 500;
const MAX_VALUES: usize = 50;
const MAX_VALUE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisField {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// The allowed values of an `ENUM` field (empty for the other types).
    #[serde(default)]
    pub values: Vec<String>,
}

/// Checks a whole replacement set: names are identifiers (`[a-z][a-z0-9_]*`, so they can
/// be JSON-schema property names and GraphQL-safe keys), unique, described; `ENUM` fields
/// list their values and only they do.
pub fn validate(fields: &[AnalysisField]) -> DomainResult<()> {
    if fields.len() > MAX_FIELDS {
        return Err(DomainError::invalid(
            "fields",
            format!("fields: at most {MAX_FIELDS} fields"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        let bad = |what: &str, why: String| {
            DomainError::invalid("fields", format!("fields[{i}].{what}: {why}"))
        };
        let name_ok = !f.name.is_empty()
            && f.name.len() <= MAX_NAME
            && f.name.starts_with(|c: char| c.is_ascii_lowercase())
            && f.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(bad(
                "name",
                format!(
                    "must be 1 to {MAX_NAME} characters of a-z, 0-9 and _, starting with a letter"
                ),
            ));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(bad("name", "names must be unique".into()));
        }
        let description = f.description.trim();
        if description.is_empty() || description.chars().count() > MAX_DESCRIPTION {
            return Err(bad(
                "description",
                format!("must be 1 to {MAX_DESCRIPTION} characters"),
            ));
        }
        match f.kind {
            FieldType::Enum => {
                if f.values.is_empty() || f.values.len() > MAX_VALUES {
                    return Err(bad(
                        "values",
                        format!("an ENUM field lists 1 to {MAX_VALUES} values"),
                    ));
                }
                let mut distinct = std::collections::HashSet::new();
                for v in &f.values {
                    if v.trim().is_empty() || v.chars().count() > MAX_VALUE {
                        return Err(bad(
                            "values",
                            format!("each value is 1 to {MAX_VALUE} characters"),
                        ));
                    }
                    if !distinct.insert(v.to_lowercase()) {
                        return Err(bad("values", "values must be unique".into()));
                    }
                }
            }
            _ if !f.values.is_empty() => {
                return Err(bad("values", "only ENUM fields have values".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldType, values: &[&str]) -> AnalysisField {
        AnalysisField {
            name: name.into(),
            description: "what it means".into(),
            kind,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// Where the refusal points: `fields[i].what`.
    fn refused_field(fields: &[AnalysisField]) -> String {
        match validate(fields) {
            Err(DomainError::InvalidInput { field, message }) => {
                assert_eq!(field, Some("fields"));
                message.split(':').next().unwrap_or_default().to_owned()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_sensible_set() {
        validate(&[
            field("meeting_time", FieldType::String, &[]),
            field("budget", FieldType::Number, &[]),
            field("wants_brochure", FieldType::Boolean, &[]),
            field("property_type", FieldType::Enum, &["flat", "villa", "plot"]),
        ])
        .unwrap();
        validate(&[]).unwrap();
    }

    #[test]
    fn refuses_bad_names_duplicates_and_values() {
        assert_eq!(
            refused_field(&[field("Budget", FieldType::Number, &[])]),
            "fields[0].name"
        );
        assert_eq!(
            refused_field(&[field("a b", FieldType::Number, &[])]),
            "fields[0].name"
        );
        assert_eq!(
            refused_field(&[
                field("x", FieldType::Number, &[]),
                field("x", FieldType::String, &[])
            ]),
            "fields[1].name"
        );
        assert_eq!(
            refused_field(&[field("e", FieldType::Enum, &[])]),
            "fields[0].values"
        );
        assert_eq!(
            refused_field(&[field("e", FieldType::Enum, &["a", "A"])]),
            "fields[0].values"
        );
        assert_eq!(
            refused_field(&[field("s", FieldType::String, &["a"])]),
            "fields[0].values"
        );
        let mut f = field("d", FieldType::String, &[]);
        f.description = " ".into();
        assert_eq!(refused_field(&[f]), "fields[0].description");
        let many: Vec<_> = (0..=MAX_FIELDS)
            .map(|i| field(&format!("f{i}"), FieldType::String, &[]))
            .collect();
        assert_eq!(refused_field(&many), "fields");
    }
}
