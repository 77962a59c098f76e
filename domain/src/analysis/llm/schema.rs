//! The JSON schema of an analysis, built from the tenant's fields. It keeps to the strict
//! subset every backend accepts (every key required, optional values nullable instead,
//! `additionalProperties: false` on every object, three levels deep), so the same schema
//! serves OpenAI's strict mode, vLLM's guided decoding, Ollama's grammar and our own
//! validation.

use serde_json::{Map, Value, json};

use super::ladder::Level;
use crate::analysis::fields::AnalysisField;
use crate::types::{CallOutcome, FieldType, Sentiment};

/// `json_schema.name`: `[a-zA-Z0-9_-]`, at most 64 characters.
pub const SCHEMA_NAME: &str = "call_analysis";

/// The schema the model's answer must match.
pub fn schema(fields: &[AnalysisField]) -> Value {
    let sentiments: Vec<&str> = Sentiment::ALL.iter().map(|s| s.as_str()).collect();
    let outcomes: Vec<&str> = CallOutcome::ALL.iter().map(|o| o.as_str()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary", "sentiment", "sentiment_score", "outcome", "extracted"],
        "properties": {
            "summary": {
                "type": "string",
                "description": "Two or three sentences: what happened on the call and what was agreed."
            },
            "sentiment": {
                "type": "string",
                "enum": sentiments,
                "description": "How the customer (not the agent) felt."
            },
            "sentiment_score": {
                "type": "number",
                "minimum": -1,
                "maximum": 1,
                "description": "From -1 (hostile) to 1 (delighted), consistent with sentiment."
            },
            "outcome": {
                "type": "string",
                "enum": outcomes,
                "description": "What the call came to."
            },
            "extracted": extracted_schema(fields),
        }
    })
}

/// The tenant's fields: all required, each nullable (null when the call does not say).
fn extracted_schema(fields: &[AnalysisField]) -> Value {
    let mut properties = Map::new();
    for f in fields {
        let mut property = match f.kind {
            FieldType::String => json!({"type": ["string", "null"]}),
            FieldType::Number => json!({"type": ["number", "null"]}),
            FieldType::Boolean => json!({"type": ["boolean", "null"]}),
            FieldType::Enum => {
                let mut values: Vec<Value> =
                    f.values.iter().map(|v| Value::from(v.as_str())).collect();
                values.push(Value::Null);
                json!({"type": ["string", "null"], "enum": values})
            }
        };
        if let Some(p) = property.as_object_mut() {
            p.insert("description".into(), Value::from(f.description.as_str()));
        }
        properties.insert(f.name.clone(), property);
    }
    let required: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
        "description": "The custom fields, each null when the call does not say."
    })
}

/// The `response_format` for a rung of the ladder (`None`: leave it out).
pub fn response_format(level: Level, schema: &Value) -> Option<Value> {
    match level {
        Level::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": SCHEMA_NAME,
                "description": "Post-call analysis",
                "strict": true,
                "schema": schema,
            }
        })),
        Level::JsonObject => Some(json!({"type": "json_object"})),
        Level::Text => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldType, values: &[&str]) -> AnalysisField {
        AnalysisField {
            name: name.into(),
            description: format!("the {name}"),
            kind,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn the_top_level_is_strict() {
        let s = schema(&[]);
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let keys: Vec<&str> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(required.len(), keys.len());
        assert!(keys.iter().all(|k| required.contains(k)));
        assert_eq!(
            s["properties"]["sentiment"]["enum"],
            json!(["POSITIVE", "NEUTRAL", "NEGATIVE"])
        );
        let outcomes = s["properties"]["outcome"]["enum"].as_array().unwrap();
        assert_eq!(outcomes.len(), CallOutcome::ALL.len());
        assert!(outcomes.contains(&json!("DO_NOT_CALL")));
        assert_eq!(s["properties"]["sentiment_score"]["type"], "number");
        let extracted = &s["properties"]["extracted"];
        assert_eq!(extracted["additionalProperties"], false);
        assert_eq!(extracted["required"], json!([]));
        assert_eq!(extracted["properties"], json!({}));
    }

    #[test]
    fn every_field_type_is_nullable_and_required() {
        let s = schema(&[
            field("meeting_time", FieldType::String, &[]),
            field("budget", FieldType::Number, &[]),
            field("wants_brochure", FieldType::Boolean, &[]),
            field("property_type", FieldType::Enum, &["flat", "villa"]),
        ]);
        let e = &s["properties"]["extracted"];
        assert_eq!(
            e["required"],
            json!(["meeting_time", "budget", "wants_brochure", "property_type"])
        );
        let p = &e["properties"];
        assert_eq!(
            p["meeting_time"],
            json!({"type": ["string", "null"], "description": "the meeting_time"})
        );
        assert_eq!(
            p["budget"],
            json!({"type": ["number", "null"], "description": "the budget"})
        );
        assert_eq!(
            p["wants_brochure"],
            json!({"type": ["boolean", "null"], "description": "the wants_brochure"})
        );
        assert_eq!(
            p["property_type"],
            json!({
                "type": ["string", "null"],
                "enum": ["flat", "villa", null],
                "description": "the property_type"
            })
        );
    }

    #[test]
    fn response_formats_per_level() {
        let s = schema(&[]);
        let strict = response_format(Level::JsonSchema, &s).unwrap();
        assert_eq!(strict["type"], "json_schema");
        assert_eq!(strict["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(strict["json_schema"]["strict"], true);
        assert_eq!(strict["json_schema"]["schema"], s);
        assert_eq!(
            response_format(Level::JsonObject, &s),
            Some(json!({"type": "json_object"}))
        );
        assert_eq!(response_format(Level::Text, &s), None);
    }
}
