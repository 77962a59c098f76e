//! Reading the model's answer. Only `json_schema` on a strict server guarantees the shape,
//! so every answer is dug out (code fences, `<think>` blocks and prose around the object
//! are common without a `response_format`) and validated here with the same rules: the
//! score clamped, the vocabulary checked, each custom field coerced to its type or null.
//! Failure reasons are ours, never quotes of the answer, since they reach users.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::analysis::fields::AnalysisField;
use crate::analysis::{Analysis, sentiment_of};
use crate::types::{CallOutcome, FieldType, Sentiment};

pub const MAX_SUMMARY_CHARS: usize = 2_000;
/// A STRING field is a value (a time, a name), not an essay.
const MAX_TEXT_FIELD_CHARS: usize = 1_000;
pub const MAX_MODEL_CHARS: usize = 100;
/// Objects tried when prose around the answer holds stray braces.
const MAX_CANDIDATES: usize = 20;

/// The answer's keys, typed loosely so that a wrong type gets our own message (serde's
/// would quote the value).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    summary: Value,
    #[serde(default)]
    sentiment: Value,
    #[serde(default)]
    sentiment_score: Value,
    #[serde(default)]
    outcome: Value,
    #[serde(default)]
    extracted: Value,
}

/// The analysis in `content`, or why it is unusable. `model` is recorded as given (capped).
pub fn analysis(content: &str, fields: &[AnalysisField], model: &str) -> Result<Analysis, String> {
    let object = json_object(content).ok_or("it is not a JSON object")?;
    let answer: Answer = serde_json::from_value(Value::Object(unwrap_nested(object)))
        .map_err(|_| "it does not have the expected keys".to_owned())?;

    let summary = match &answer.summary {
        Value::String(s) if !s.trim().is_empty() => truncate(s.trim(), MAX_SUMMARY_CHARS),
        Value::String(_) => return Err("summary is empty".into()),
        _ => return Err("summary is missing or not a string".into()),
    };
    let sentiment = match &answer.sentiment {
        Value::String(s) => Sentiment::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim())),
        _ => None,
    };
    let score = match &answer.sentiment_score {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) => Some(
            s.trim()
                .parse::<f64>()
                .map_err(|_| "sentiment_score is not a number")?,
        ),
        _ => return Err("sentiment_score is not a number".into()),
    };
    let score = match (score, sentiment) {
        (Some(s), _) if !s.is_finite() => return Err("sentiment_score is not a number".into()),
        (Some(s), _) => s.clamp(-1.0, 1.0),
        // A label without a score: the middle of the label's range.
        (None, Some(Sentiment::Positive)) => 0.5,
        (None, Some(Sentiment::Neutral)) => 0.0,
        (None, Some(Sentiment::Negative)) => -0.5,
        (None, None) => return Err("sentiment_score is missing".into()),
    };
    let outcome = match &answer.outcome {
        Value::String(s) => parse_outcome(s).ok_or("outcome is not one of the allowed values")?,
        _ => return Err("outcome is missing or not a string".into()),
    };
    let given = match answer.extracted {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => return Err("extracted is not an object".into()),
    };
    // Unknown keys are dropped; missing ones are null.
    let extracted: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.clone(), coerce(f, given.get(&f.name))))
        .collect();
    Ok(Analysis {
        sentiment: sentiment.unwrap_or_else(|| sentiment_of(score)),
        sentiment_score: score,
        outcome,
        summary,
        extracted,
        model: truncate(model.trim(), MAX_MODEL_CHARS),
    })
}

/// `{"call_analysis": {...}}` from a model that named its answer: the inner object.
fn unwrap_nested(object: Map<String, Value>) -> Map<String, Value> {
    if !object.contains_key("outcome")
        && object.len() == 1
        && let Some((_, Value::Object(inner))) = object.iter().next()
        && inner.contains_key("outcome")
    {
        return inner.clone();
    }
    object
}

/// Case and separators do not matter: `appointment booked` is `APPOINTMENT_BOOKED`.
fn parse_outcome(text: &str) -> Option<CallOutcome> {
    let canonical: String = text
        .trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    canonical.parse().ok()
}

/// The first JSON object in `content`: the whole of it when it is one, else the first
/// balanced `{...}` that parses, after any `<think>` block and code fences.
pub fn json_object(content: &str) -> Option<Map<String, Value>> {
    let mut text = content.trim();
    if let Some((_, after)) = text.rsplit_once("</think>") {
        text = after.trim();
    }
    if let Some(rest) = text.strip_prefix("```") {
        // Drop the fence line (```json) and the closing fence.
        text = rest.split_once('\n').map_or(rest, |(_, body)| body);
        text = text.trim_end().strip_suffix("```").unwrap_or(text).trim();
    }
    if let Ok(Value::Object(m)) = serde_json::from_str(text) {
        return Some(m);
    }
    text.match_indices('{')
        .take(MAX_CANDIDATES)
        .find_map(|(start, _)| {
            let end = start + balanced_len(&text[start..])?;
            match serde_json::from_str(&text[start..end]) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            }
        })
}

/// The length in bytes of the object `text` starts with, through its closing brace
/// (braces inside strings do not count).
fn balanced_len(text: &str) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    // Bytes are safe: `{`, `}`, `"` and `\` never occur inside a multi-byte character.
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// A custom field's value as its type, or null.
fn coerce(field: &AnalysisField, value: Option<&Value>) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match (field.kind, value) {
        (FieldType::String, Value::String(s)) => {
            let s = s.trim();
            if PLACEHOLDERS.iter().any(|p| s.eq_ignore_ascii_case(p)) {
                Value::Null
            } else {
                Value::from(truncate(s, MAX_TEXT_FIELD_CHARS))
            }
        }
        (FieldType::String, Value::Number(n)) => Value::from(n.to_string()),
        (FieldType::String, Value::Bool(b)) => Value::from(b.to_string()),
        (FieldType::Number, Value::Number(n)) => Value::Number(n.clone()),
        (FieldType::Number, Value::String(s)) => number(s),
        (FieldType::Boolean, Value::Bool(b)) => Value::Bool(*b),
        (FieldType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => Value::Null,
        },
        (FieldType::Enum, Value::String(s)) => {
            let s = s.trim().to_lowercase();
            field
                .values
                .iter()
                .find(|v| v.to_lowercase() == s)
                .map_or(Value::Null, |v| Value::from(v.as_str()))
        }
        _ => Value::Null,
    }
}

/// What models write in a text field when the call did not say.
const PLACEHOLDERS: &[&str] = &[
    "",
    "null",
    "none",
    "n/a",
    "na",
    "unknown",
    "not mentioned",
    "not specified",
];

/// A number written as text (`"250000"`, `"2.5"`, `"1,500,000"`), or null.
fn number(text: &str) -> Value {
    let text = text.trim();
    let plain = if thousands_grouped(text) {
        text.replace(',', "")
    } else {
        text.to_owned()
    };
    match plain.parse::<f64>() {
        Ok(n) if n.is_finite() => {
            // Whole numbers stay integers, as the model would have written them.
            if n.fract() == 0.0 && n.abs() < 9e15 {
                Value::from(n as i64)
            } else {
                Number::from_f64(n).map_or(Value::Null, Value::Number)
            }
        }
        _ => Value::Null,
    }
}

/// `1,500` or `-12,000,000.50`: commas only between groups of three digits (so the
/// decimal comma of `1,5` is not read as a separator).
fn thousands_grouped(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let whole = unsigned.split_once('.').map_or(unsigned, |(w, _)| w);
    let mut groups = whole.split(',');
    let first_ok = groups
        .next()
        .is_some_and(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
    let mut rest = groups.peekable();
    first_ok
        && rest.peek().is_some()
        && rest.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GOOD: &str = r#"{"summary":" Booked a site visit for Saturday. ","sentiment":"POSITIVE","sentiment_score":0.8,"outcome":"APPOINTMENT_BOOKED","extracted":{}}"#;

    fn field(name: &str, kind: FieldType, values: &[&str]) -> AnalysisField {
        AnalysisField {
            name: name.into(),
            description: "d".into(),
            kind,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn a_good_answer() {
        let a = analysis(GOOD, &[], "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(a.summary, "Booked a site visit for Saturday.");
        assert_eq!(a.sentiment, Sentiment::Positive);
        assert_eq!(a.sentiment_score, 0.8);
        assert_eq!(a.outcome, CallOutcome::AppointmentBooked);
        assert!(a.extracted.is_empty());
        assert_eq!(a.model, "gpt-4o-mini-2024-07-18");
    }

    #[test]
    fn fences_prose_and_thinking_around_the_answer() {
        let fenced = format!("```json\n{GOOD}\n```");
        let prose = format!("Sure! Here is the analysis {{as asked}}:\n{GOOD}\nHope it helps.");
        let thinking = format!("<think>The user wants {{json}}...</think>\n{GOOD}");
        let wrapped = format!(r#"{{"call_analysis": {GOOD}}}"#);
        for text in [fenced, prose, thinking, wrapped] {
            let a = analysis(&text, &[], "m").unwrap();
            assert_eq!(a.outcome, CallOutcome::AppointmentBooked, "{text}");
        }
        // Braces inside strings do not end the object.
        let braces = r#"note: {"summary":"said \"}\" twice { ","sentiment":"NEUTRAL","sentiment_score":0,"outcome":"OTHER","extracted":null}"#;
        assert_eq!(
            analysis(braces, &[], "m").unwrap().summary,
            "said \"}\" twice {"
        );
    }

    #[test]
    fn unusable_answers_say_why_without_quoting() {
        let reason = |text: &str| analysis(text, &[], "m").unwrap_err();
        assert_eq!(
            reason("I cannot help with that."),
            "it is not a JSON object"
        );
        assert_eq!(reason(r#"{"summary":"x""#), "it is not a JSON object");
        let bad_outcome = GOOD.replace("APPOINTMENT_BOOKED", "SOLD_A_HOUSE");
        assert_eq!(
            reason(&bad_outcome),
            "outcome is not one of the allowed values"
        );
        assert!(!reason(&bad_outcome).contains("SOLD"));
        assert_eq!(
            reason(&GOOD.replace("\"outcome\":\"APPOINTMENT_BOOKED\",", "")),
            "outcome is missing or not a string"
        );
        assert_eq!(
            reason(&GOOD.replace(" Booked a site visit for Saturday. ", " ")),
            "summary is empty"
        );
        assert_eq!(
            reason(&GOOD.replace("0.8", "\"NaN\"")),
            "sentiment_score is not a number"
        );
        assert_eq!(
            reason(&GOOD.replace("\"extracted\":{}", "\"extracted\":[1]")),
            "extracted is not an object"
        );
    }

    #[test]
    fn scores_sentiments_and_outcomes_are_normalised() {
        let a = analysis(&GOOD.replace("0.8", "3.5"), &[], "m").unwrap();
        assert_eq!(a.sentiment_score, 1.0);
        let a = analysis(&GOOD.replace("0.8", "\"-0.4\""), &[], "m").unwrap();
        assert_eq!(a.sentiment_score, -0.4);
        // A missing or unknown label comes from the score.
        let a = analysis(
            &GOOD
                .replace("\"POSITIVE\"", "\"ecstatic\"")
                .replace("0.8", "-0.9"),
            &[],
            "m",
        )
        .unwrap();
        assert_eq!(a.sentiment, Sentiment::Negative);
        let a = analysis(&GOOD.replace("\"sentiment\":\"POSITIVE\",", ""), &[], "m").unwrap();
        assert_eq!(a.sentiment, Sentiment::Positive);
        // A label without a score.
        let a = analysis(&GOOD.replace("\"sentiment_score\":0.8,", ""), &[], "m").unwrap();
        assert_eq!(a.sentiment_score, 0.5);
        let a = analysis(
            &GOOD
                .replace("POSITIVE", "positive")
                .replace("APPOINTMENT_BOOKED", "callback requested"),
            &[],
            "m",
        )
        .unwrap();
        assert_eq!(a.sentiment, Sentiment::Positive);
        assert_eq!(a.outcome, CallOutcome::CallbackRequested);
        let long = GOOD.replace("Booked a site visit for Saturday.", &"a".repeat(5000));
        let a = analysis(&long, &[], &"m".repeat(300)).unwrap();
        assert_eq!(a.summary.chars().count(), MAX_SUMMARY_CHARS);
        assert_eq!(a.model.chars().count(), MAX_MODEL_CHARS);
    }

    #[test]
    fn custom_fields_are_coerced_to_their_types() {
        let fields = [
            field("meeting_time", FieldType::String, &[]),
            field("budget", FieldType::Number, &[]),
            field("area", FieldType::Number, &[]),
            field("wants_brochure", FieldType::Boolean, &[]),
            field("property_type", FieldType::Enum, &["Flat", "Villa"]),
            field("email", FieldType::String, &[]),
            field("missing", FieldType::Boolean, &[]),
        ];
        let extracted = json!({
            "meeting_time": " Saturday 11am ",
            "budget": "1,500,000",
            "area": "about 1200",
            "wants_brochure": "yes",
            "property_type": "villa",
            "email": "N/A",
            "not_a_field": 1
        });
        let text = GOOD.replace("\"extracted\":{}", &format!("\"extracted\":{extracted}"));
        let a = analysis(&text, &fields, "m").unwrap();
        assert_eq!(
            Value::Object(a.extracted),
            json!({
                "meeting_time": "Saturday 11am",
                "budget": 1_500_000,
                "area": null,
                "wants_brochure": true,
                "property_type": "Villa",
                "email": null,
                "missing": null
            })
        );
    }

    #[test]
    fn coercion_edge_cases() {
        let num = field("n", FieldType::Number, &[]);
        assert_eq!(coerce(&num, Some(&json!(2.5))), json!(2.5));
        assert_eq!(coerce(&num, Some(&json!("2.5"))), json!(2.5));
        assert_eq!(coerce(&num, Some(&json!("1,5"))), Value::Null);
        assert_eq!(coerce(&num, Some(&json!("-12,000"))), json!(-12000));
        assert_eq!(coerce(&num, Some(&json!("inf"))), Value::Null);
        assert_eq!(coerce(&num, Some(&json!(true))), Value::Null);
        let e = field("e", FieldType::Enum, &["flat"]);
        assert_eq!(coerce(&e, Some(&json!("castle"))), Value::Null);
        assert_eq!(coerce(&e, Some(&json!(null))), Value::Null);
        let b = field("b", FieldType::Boolean, &[]);
        assert_eq!(coerce(&b, Some(&json!("maybe"))), Value::Null);
        assert_eq!(coerce(&b, Some(&json!(false))), json!(false));
        let s = field("s", FieldType::String, &[]);
        assert_eq!(coerce(&s, Some(&json!(42))), json!("42"));
        assert_eq!(coerce(&s, Some(&json!({"a": 1}))), Value::Null);
        assert_eq!(coerce(&s, None), Value::Null);
    }
}
