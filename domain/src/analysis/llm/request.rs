//! What is sent: the prompts and the chat-completions body for a rung of the ladder, and
//! the repair request that shows the model its bad answer.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::ladder::{Level, Param};
use super::schema::response_format;
use crate::analysis::fields::AnalysisField;
use crate::types::{CallOutcome, FieldType};

/// Transcripts longer than this are cut (a two-hour call is about 100,000 characters),
/// so one odd call cannot blow the context window or the token bill.
pub const MAX_TRANSCRIPT_CHARS: usize = 120_000;

/// The most of a bad answer quoted back in a repair request.
const MAX_QUOTED_ANSWER: usize = 16_000;

/// An answer that failed validation, and why.
#[derive(Debug, Clone)]
pub struct Repair {
    pub answer: String,
    pub reason: String,
}

/// What each request of one analysis shares.
pub struct Prompt<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    pub fields: &'a [AnalysisField],
    pub schema: &'a Value,
    pub transcript: &'a str,
}

impl Prompt<'_> {
    /// The request body. `omitted` holds the `Param::bit`s of parameters left out.
    pub fn body(&self, level: Level, omitted: u8, repair: Option<&Repair>) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": self.messages(level, repair),
        });
        let params = [
            (Param::Temperature, json!(0)),
            // Ollama reads only `max_tokens`; OpenAI's newer models only the other.
            (Param::MaxTokens, json!(self.max_tokens)),
            (Param::MaxCompletionTokens, json!(self.max_tokens)),
        ];
        if let Some(b) = body.as_object_mut() {
            for (param, value) in params {
                if omitted & param.bit() == 0 {
                    b.insert(param.name().into(), value);
                }
            }
            if let Some(format) = response_format(level, self.schema) {
                b.insert("response_format".into(), format);
            }
        }
        body
    }

    fn messages(&self, level: Level, repair: Option<&Repair>) -> Vec<Value> {
        let mut messages = vec![
            json!({"role": "system", "content": system_prompt(level, self.fields, self.schema)}),
            json!({"role": "user", "content": user_prompt(self.transcript)}),
        ];
        if let Some(r) = repair {
            messages.push(
                json!({"role": "assistant", "content": truncate(&r.answer, MAX_QUOTED_ANSWER)}),
            );
            messages.push(json!({"role": "user", "content": format!(
                "That reply cannot be used: {}. Reply again with only the corrected JSON object \
                 matching the schema: no prose, no code fences.",
                r.reason
            )}));
        }
        messages
    }
}

fn user_prompt(transcript: &str) -> String {
    let cut = truncate(transcript.trim(), MAX_TRANSCRIPT_CHARS);
    let note = if cut.len() < transcript.trim().len() {
        "\n[transcript cut here]"
    } else {
        ""
    };
    format!("Transcript:\n{cut}{note}")
}

/// At most `max` characters of `text`.
fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// What each outcome means; an exhaustive match so a new outcome cannot go unexplained.
fn outcome_meaning(o: CallOutcome) -> &'static str {
    match o {
        CallOutcome::AppointmentBooked => {
            "a meeting, visit, demo or appointment was agreed for a date or time"
        }
        CallOutcome::Interested => "the customer showed real interest but nothing was booked",
        CallOutcome::CallbackRequested => "the customer asked to be called back later",
        CallOutcome::NotInterested => "the customer declined or showed no interest",
        CallOutcome::Voicemail => "the call reached voicemail or an answering machine",
        CallOutcome::NoAnswer => "nobody answered, or nobody spoke on the line",
        CallOutcome::WrongNumber => "the person who answered is not the one meant to be reached",
        CallOutcome::DoNotCall => "the customer asked not to be called again",
        CallOutcome::Other => "none of the above",
    }
}

fn field_type(f: &AnalysisField) -> String {
    match f.kind {
        FieldType::String => "text".into(),
        FieldType::Number => "a number (digits only, no units or currency)".into(),
        FieldType::Boolean => "true or false".into(),
        FieldType::Enum => format!("one of {}", f.values.join(", ")),
    }
}

/// The task, the outcome vocabulary and the fields. The schema itself is sent only when
/// `response_format` does not carry it. Every version says "JSON" (needed by
/// `json_object` mode).
pub fn system_prompt(level: Level, fields: &[AnalysisField], schema: &Value) -> String {
    let mut p = String::from(
        "You analyse transcripts of sales phone calls between an AI voice agent (lines \
         starting \"assistant:\" or \"agent:\") and a customer (\"user:\" or \"customer:\"). \
         Use only what the transcript says; never invent details. Reply with one JSON object \
         with these keys:\n\
         - summary: two or three sentences on what happened and what was agreed.\n\
         - sentiment: POSITIVE, NEUTRAL or NEGATIVE, how the customer (not the agent) felt.\n\
         - sentiment_score: a number from -1 (hostile) to 1 (delighted), consistent with sentiment.\n\
         - outcome: exactly one of these values:\n",
    );
    for o in CallOutcome::ALL {
        let _ = writeln!(p, "  - {}: {}", o.as_str(), outcome_meaning(*o));
    }
    if fields.is_empty() {
        p.push_str("- extracted: an empty object {}.\n");
    } else {
        p.push_str(
            "- extracted: an object with exactly these keys, each null when the call does not say:\n",
        );
        for f in fields {
            let _ = writeln!(p, "  - {} ({}): {}", f.name, field_type(f), f.description);
        }
    }
    match level {
        Level::JsonSchema => {}
        Level::JsonObject => {
            let _ = writeln!(p, "The JSON object must match this JSON schema:\n{schema}");
        }
        Level::Text => {
            let _ = writeln!(
                p,
                "The object must match this JSON schema:\n{schema}\n\
                 Reply with JSON only: the object alone, no prose before or after it, no code fences."
            );
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::llm::schema::schema;

    fn prompt<'a>(
        fields: &'a [AnalysisField],
        schema: &'a Value,
        transcript: &'a str,
    ) -> Prompt<'a> {
        Prompt {
            model: "gpt-4o-mini",
            max_tokens: 800,
            fields,
            schema,
            transcript,
        }
    }

    #[test]
    fn the_body_carries_the_model_limits_and_format() {
        let s = schema(&[]);
        let p = prompt(&[], &s, "user: hello there");
        let body = p.body(Level::JsonSchema, 0, None);
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["max_tokens"], 800);
        assert_eq!(body["max_completion_tokens"], 800);
        assert_eq!(body["response_format"]["type"], "json_schema");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[1]["content"], "Transcript:\nuser: hello there");

        let body = p.body(
            Level::Text,
            Param::MaxTokens.bit() | Param::Temperature.bit(),
            None,
        );
        assert!(body.get("response_format").is_none());
        assert!(body.get("max_tokens").is_none());
        assert!(body.get("temperature").is_none());
        assert_eq!(body["max_completion_tokens"], 800);
    }

    #[test]
    fn every_prompt_says_json_and_lists_the_vocabulary() {
        let fields = [AnalysisField {
            name: "property_type".into(),
            description: "what they want to buy".into(),
            kind: FieldType::Enum,
            values: vec!["flat".into(), "villa".into()],
        }];
        let s = schema(&fields);
        for level in [Level::JsonSchema, Level::JsonObject, Level::Text] {
            let p = system_prompt(level, &fields, &s);
            assert!(p.contains("JSON"), "{level:?}");
            assert!(p.contains("APPOINTMENT_BOOKED") && p.contains("DO_NOT_CALL"));
            assert!(p.contains("property_type (one of flat, villa): what they want to buy"));
            // The schema rides in the prompt only when response_format cannot carry it.
            assert_eq!(
                p.contains("\"additionalProperties\""),
                level != Level::JsonSchema
            );
        }
        assert!(system_prompt(Level::Text, &fields, &s).contains("Reply with JSON only"));
    }

    #[test]
    fn a_repair_quotes_the_bad_answer_and_the_reason() {
        let s = schema(&[]);
        let p = prompt(&[], &s, "user: hi");
        let repair = Repair {
            answer: "{\"summary\": ".into(),
            reason: "it is not valid JSON".into(),
        };
        let body = p.body(Level::JsonObject, 0, Some(&repair));
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(messages[2]["content"], "{\"summary\": ");
        let ask = messages[3]["content"].as_str().unwrap();
        assert!(ask.contains("it is not valid JSON") && ask.contains("JSON object"));
    }

    #[test]
    fn long_transcripts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TRANSCRIPT_CHARS + 10);
        let text = user_prompt(&long);
        assert!(text.ends_with("[transcript cut here]"));
        assert_eq!(
            text.chars().filter(|c| *c == 'é').count(),
            MAX_TRANSCRIPT_CHARS
        );
    }
}
