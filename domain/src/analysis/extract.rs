//! Filling a tenant's custom fields from a transcript without an LLM: times and dates,
//! email addresses, amounts (with lakh / crore / k), enum values named by the customer,
//! and booleans and objections the outcome already answers. What cannot be read with
//! confidence stays null.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::fields::AnalysisField;
use super::transcript::{Transcript, has_any};
use crate::types::{CallOutcome, FieldType};

/// Patterns are constants: one that does not compile (a bug caught by the tests) matches
/// nothing rather than failing a job.
fn pattern(p: &str) -> Option<Regex> {
    Regex::new(p).ok()
}

static TIME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    pattern(r"(?i)\b(\d{1,2})(?:[:.](\d{2}))?\s*(a\.?m\.?|p\.?m\.?|baje|o'?clock)(?:\W|$)")
});
static EMAIL: LazyLock<Option<Regex>> =
    LazyLock::new(|| pattern(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"));
static AMOUNT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    pattern(
        r"(?i)(rs\.?|inr|₹|\$|usd|rupees?)?\s*(\d[\d,]*(?:\.\d+)?)\s*(lakhs?|lacs?|crores?|cr|k|thousand|million|mn)?\b",
    )
});

/// Day words, longest first so "day after tomorrow" wins over "tomorrow".
const DAYS: &[&str] = &[
    "day after tomorrow",
    "next week",
    "next month",
    "this weekend",
    "this evening",
    "tomorrow morning",
    "tomorrow evening",
    "tomorrow",
    "tonight",
    "today",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "weekend",
    "kal shaam",
    "kal subah",
    "parso",
    "kal",
    "aaj",
];

/// "tomorrow 5 pm", "friday", "10:30 am": when the customer said something should happen.
pub fn when(transcript: &Transcript) -> Option<String> {
    let customer = transcript.customer();
    let day = DAYS
        .iter()
        .find(|d| customer.contains(&format!(" {d} ")))
        .map(|d| (*d).to_owned());
    let raw: String = transcript
        .turns
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let time = TIME.as_ref().and_then(|re| {
        // The last time anyone named: the one the conversation settled on.
        re.captures_iter(&raw).last().map(|c| {
            let hour = c.get(1).map_or("", |m| m.as_str());
            let minutes = c
                .get(2)
                .map(|m| format!(":{}", m.as_str()))
                .unwrap_or_default();
            let unit = c.get(3).map_or(String::new(), |m| {
                m.as_str().to_lowercase().replace('.', "")
            });
            format!("{hour}{minutes} {unit}")
        })
    });
    match (day, time) {
        (Some(d), Some(t)) => Some(format!("{d} {t}")),
        (Some(d), None) => Some(d),
        (None, Some(t)) => Some(t),
        (None, None) => None,
    }
}

pub fn email(transcript: &Transcript) -> Option<String> {
    let re = EMAIL.as_ref()?;
    transcript
        .turns
        .iter()
        .find_map(|t| re.find(&t.text).map(|m| m.as_str().to_lowercase()))
}

/// The first amount the customer named: with a currency or a multiplier, or at least 1,000
/// (so "2 bedrooms" or a time is not a budget).
pub fn amount(transcript: &Transcript) -> Option<f64> {
    let re = AMOUNT.as_ref()?;
    for turn in &transcript.turns {
        if turn.speaker == super::transcript::Speaker::Agent {
            continue;
        }
        for c in re.captures_iter(&turn.text) {
            let Some(number) = c.get(2) else { continue };
            let rest = &turn.text[number.end()..];
            let rest = rest.trim_start().to_lowercase();
            if ["am", "pm", "a.m", "p.m", "baje", "o'clock", ":"]
                .iter()
                .any(|u| rest.starts_with(u))
            {
                continue;
            }
            let Ok(value) = number.as_str().replace(',', "").parse::<f64>() else {
                continue;
            };
            let multiplier = match c.get(3).map(|m| m.as_str().to_lowercase()) {
                Some(m) if m.starts_with("lakh") || m.starts_with("lac") => 100_000.0,
                Some(m) if m.starts_with("crore") || m == "cr" => 10_000_000.0,
                Some(m) if m == "k" || m == "thousand" => 1_000.0,
                Some(m) if m == "million" || m == "mn" => 1_000_000.0,
                _ => 1.0,
            };
            if c.get(1).is_some() || multiplier > 1.0 || value >= 1_000.0 {
                return Some(value * multiplier);
            }
        }
    }
    None
}

/// Objections a customer commonly gives, as the value of an objection field.
const OBJECTIONS: &[(&str, &str)] = &[
    ("too expensive", "price"),
    ("very expensive", "price"),
    ("bahut mehenga", "price"),
    ("mehenga", "price"),
    ("no budget", "budget"),
    ("budget nahi", "budget"),
    ("already have", "already has one"),
    ("already bought", "already has one"),
    ("not the right time", "timing"),
    ("too far", "location"),
    ("bahut door", "location"),
];

fn hints(field: &AnalysisField, words: &[&str]) -> bool {
    let text = format!(
        " {} {} ",
        field.name.replace('_', " "),
        field.description.to_lowercase()
    );
    words.iter().any(|w| text.contains(w))
}

/// Every field of the tenant, filled where the text says it plainly, else null.
pub fn fill(
    fields: &[AnalysisField],
    transcript: &Transcript,
    outcome: CallOutcome,
) -> Map<String, Value> {
    let customer = transcript.customer();
    let mut out = Map::new();
    for f in fields {
        let value = match f.kind {
            FieldType::String => {
                if hints(f, &["email", "e-mail", "mail id"]) {
                    email(transcript).map(Value::from)
                } else if hints(f, &["objection", "concern", "reason"]) {
                    OBJECTIONS
                        .iter()
                        .find(|(phrase, _)| customer.contains(&format!(" {phrase} ")))
                        .map(|(_, what)| Value::from(*what))
                } else if hints(
                    f,
                    &[
                        "time",
                        "when",
                        "date",
                        "day",
                        "callback",
                        "call back",
                        "meeting",
                        "appointment",
                        "slot",
                        "visit",
                    ],
                ) {
                    when(transcript).map(Value::from)
                } else {
                    None
                }
            }
            FieldType::Number => {
                if hints(
                    f,
                    &[
                        "budget", "price", "amount", "cost", "salary", "income", "value", "loan",
                    ],
                ) {
                    amount(transcript).map(Value::from)
                } else {
                    None
                }
            }
            FieldType::Boolean => {
                if hints(f, &["interest"]) {
                    Some(Value::from(matches!(
                        outcome,
                        CallOutcome::Interested
                            | CallOutcome::AppointmentBooked
                            | CallOutcome::CallbackRequested
                    )))
                } else if hints(f, &["book", "appointment", "meeting"]) {
                    Some(Value::from(outcome == CallOutcome::AppointmentBooked))
                } else if hints(f, &["callback", "call back"]) {
                    Some(Value::from(outcome == CallOutcome::CallbackRequested))
                } else {
                    None
                }
            }
            FieldType::Enum => f
                .values
                .iter()
                .find(|v| {
                    has_any(
                        &customer,
                        &[super::transcript::normalise([v.as_str()].into_iter()).trim()],
                    )
                })
                .map(|v| Value::from(v.as_str())),
        };
        out.insert(f.name.clone(), value.unwrap_or(Value::Null));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Transcript {
        Transcript::parse(text)
    }

    #[test]
    fn reads_times_and_days() {
        assert_eq!(
            when(&t("assistant: When?\nuser: Call me tomorrow at 5 pm")).as_deref(),
            Some("tomorrow 5 pm")
        );
        assert_eq!(
            when(&t("user: kal shaam 6 baje theek hai")).as_deref(),
            Some("kal shaam 6 baje")
        );
        assert_eq!(
            when(&t("user: 10:30 a.m. works")).as_deref(),
            Some("10:30 am")
        );
        assert_eq!(when(&t("user: friday is fine")).as_deref(), Some("friday"));
        assert_eq!(when(&t("user: no idea")), None);
    }

    #[test]
    fn reads_emails_and_amounts() {
        assert_eq!(
            email(&t("user: it is Priya.S@Example.co.in, thanks")).as_deref(),
            Some("priya.s@example.co.in")
        );
        assert_eq!(amount(&t("user: around 50 lakh")), Some(5_000_000.0));
        assert_eq!(amount(&t("user: budget is 1.5 crore")), Some(15_000_000.0));
        assert_eq!(amount(&t("user: Rs 20,000 a month")), Some(20_000.0));
        assert_eq!(amount(&t("user: maybe 30k")), Some(30_000.0));
        assert_eq!(amount(&t("user: 2 bedrooms, call at 5 pm")), None);
        assert_eq!(amount(&t("assistant: it costs 40 lakh\nuser: ok")), None);
    }

    #[test]
    fn fills_what_it_can_and_leaves_the_rest_null() {
        let fields = vec![
            AnalysisField {
                name: "callback_time".into(),
                description: "When to call back".into(),
                kind: FieldType::String,
                values: vec![],
            },
            AnalysisField {
                name: "budget".into(),
                description: "Budget in rupees".into(),
                kind: FieldType::Number,
                values: vec![],
            },
            AnalysisField {
                name: "property_type".into(),
                description: "What they want".into(),
                kind: FieldType::Enum,
                values: vec!["Flat".into(), "Villa".into()],
            },
            AnalysisField {
                name: "is_interested".into(),
                description: "Interested at all".into(),
                kind: FieldType::Boolean,
                values: vec![],
            },
            AnalysisField {
                name: "objections".into(),
                description: "Their objections".into(),
                kind: FieldType::String,
                values: vec![],
            },
            AnalysisField {
                name: "pet_name".into(),
                description: "Their dog's name".into(),
                kind: FieldType::String,
                values: vec![],
            },
        ];
        let got = fill(
            &fields,
            &t(
                "user: I want a villa, budget 80 lakh, but it is too expensive. Call me back tomorrow at 6 pm",
            ),
            CallOutcome::CallbackRequested,
        );
        assert_eq!(got["callback_time"], "tomorrow 6 pm");
        assert_eq!(got["budget"], 8_000_000.0);
        assert_eq!(got["property_type"], "Villa");
        assert_eq!(got["is_interested"], true);
        assert_eq!(got["objections"], "price");
        assert_eq!(got["pet_name"], Value::Null);
    }
}
