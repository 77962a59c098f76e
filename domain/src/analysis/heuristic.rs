//! The embedded analyzer (`heuristic-v1`), used when no LLM is configured: deterministic
//! phrase rules over the transcript in English and in Hindi written in Latin script
//! (Hinglish), a small sentiment lexicon, a templated summary, and the custom fields
//! `extract` can read.
//!
//! Outcomes are decided in order of precedence, first match wins: a request not to be
//! called, a wrong number, a machine (voicemail, or an operator's "switched off"), a
//! booking, an explicit request to call back, a refusal, a customer who is merely busy, an
//! interested customer; otherwise `OTHER`.

use super::fields::AnalysisField;
use super::transcript::{Transcript, count_any, has_any};
use super::{Analysis, extract, sentiment_of};
use crate::types::CallOutcome;

pub const MODEL: &str = "heuristic-v1";

const DO_NOT_CALL: &[&str] = &[
    "do not call",
    "stop calling",
    "never call",
    "remove my number",
    "remove me from",
    "take me off",
    "take my number off",
    "unsubscribe",
    "no more calls",
    "stop these calls",
    "call mat karo",
    "call mat karna",
    "call mat kijiye",
    "call mat kariye",
    "phone mat karo",
    "phone mat karna",
    "dobara call mat",
    "dubara call mat",
    "fir se call mat",
    "phir se call mat",
    "mujhe call mat",
    "number hata do",
    "number hatao",
    "number delete karo",
    "call band karo",
    "calls band karo",
];

const WRONG_NUMBER: &[&str] = &[
    "wrong number",
    "no one by that name",
    "nobody by that name",
    "no one here by",
    "nobody here by",
    "no one named",
    "nobody named",
    "you have the wrong",
    "got the wrong person",
    "wrong person",
    "galat number",
    "number galat",
    "galat insaan",
    "is naam ka koi nahi",
    "is naam se koi nahi",
    "yahan koi nahi",
    "aisa koi nahi",
];

const VOICEMAIL: &[&str] = &[
    "leave a message",
    "leave your message",
    "leave me a message",
    "after the tone",
    "after the beep",
    "voicemail",
    "voice mail",
    "mailbox",
    "record your message",
    "not available to take your call",
    "can not take your call",
    "unable to take your call",
    "beep ke baad",
    "message chhod",
    "message chod",
    "sandesh",
];

const OPERATOR: &[&str] = &[
    "number you have dialled",
    "number you have dialed",
    "number you are calling",
    "is switched off",
    "not reachable",
    "out of coverage",
    "does not exist",
    "pahunch se bahar",
    "switch off hai",
    "band hai",
    "uplabdh nahi",
];

/// The agent saying the appointment stands.
const BOOKING_CONFIRMED: &[&str] = &[
    "is booked",
    "have booked",
    "booked your",
    "booked you",
    "booked for",
    "is scheduled",
    "have scheduled",
    "scheduled your",
    "scheduled you",
    "scheduled for",
    "is confirmed",
    "confirmed your",
    "confirmed for",
    "appointment is set",
    "visit is fixed",
    "see you on",
    "see you at",
    "book kar diya",
    "book kar di",
    "book ho gaya",
    "book ho gayi",
    "fix kar diya",
    "fix kar di",
    "confirm kar diya",
    "confirm kar di",
    "confirm ho gaya",
];

/// The customer taking a slot.
const BOOKING_ASKED: &[&str] = &[
    "book it",
    "book me",
    "book a slot",
    "book the slot",
    "schedule it",
    "schedule the visit",
    "schedule a visit",
    "that works",
    "works for me",
    "see you then",
    "book kar do",
    "book kar dijiye",
    "book karo",
    "slot book",
    "confirm kar do",
    "fix kar do",
    "aa jaunga",
    "aa jaungi",
];

const CUSTOMER_YES: &[&str] = &[
    "yes", "yeah", "sure", "ok", "okay", "perfect", "great", "fine", "done", "haan", "han", "ji",
    "theek", "thik", "bilkul", "zaroor", "chalega",
];

const CALL_BACK: &[&str] = &[
    "call me back",
    "call back",
    "call me later",
    "call later",
    "call me tomorrow",
    "call tomorrow",
    "call me next",
    "call next",
    "call me in the",
    "call me after",
    "call after",
    "call me on",
    "call me at",
    "try me later",
    "talk later",
    "speak later",
    "some other time",
    "another time",
    "baad mein call",
    "baad me call",
    "baad mein baat",
    "baad me baat",
    "kal call",
    "shaam ko call",
    "subah call",
    "phir call karna",
    "fir call karna",
    "phir se call karna",
    "call karna baad",
    "thodi der baad",
    "thodi der mein",
];

const BUSY: &[&str] = &[
    "i am busy",
    "busy right now",
    "busy now",
    "in a meeting",
    "i am driving",
    "driving right now",
    "not a good time",
    "bad time",
    "abhi busy",
    "busy hoon",
    "busy hun",
    "abhi time nahi",
    "meeting mein hoon",
    "meeting me hoon",
    "drive kar raha",
    "drive kar rahi",
];

const NOT_INTERESTED: &[&str] = &[
    "not interested",
    "no thanks",
    "no thank you",
    "not looking",
    "do not need",
    "do not want",
    "no need",
    "not required",
    "already have",
    "already bought",
    "already taken",
    "will pass",
    "i pass",
    "not for me",
    "interested nahi",
    "interest nahi",
    "nahi chahiye",
    "zarurat nahi",
    "zaroorat nahi",
    "nahi lena",
    "koi interest nahi",
    "nahi karna",
];

const INTERESTED: &[&str] = &[
    "interested",
    "tell me more",
    "send me details",
    "send me the details",
    "send details",
    "send the details",
    "send me information",
    "send me the brochure",
    "share the details",
    "share details",
    "sounds good",
    "sounds interesting",
    "how much",
    "what is the price",
    "what is the cost",
    "i would like",
    "i want to know",
    "want to know more",
    "yes please",
    "details bhejo",
    "details bhej do",
    "detail bhejiye",
    "details bhejiye",
    "aur batao",
    "aur bataiye",
    "kitna hai",
    "kitne ka",
    "price kya",
    "mujhe chahiye",
    "achha lagta",
    "accha lagta",
];

const POSITIVE: &[&str] = &[
    "great",
    "good",
    "thanks",
    "thank",
    "perfect",
    "awesome",
    "excellent",
    "wonderful",
    "love",
    "happy",
    "glad",
    "nice",
    "sure",
    "yes",
    "interested",
    "amazing",
    "helpful",
    "fantastic",
    "accha",
    "achha",
    "acha",
    "badhiya",
    "shukriya",
    "dhanyavaad",
    "dhanyawad",
    "haan",
    "zaroor",
    "mast",
    "sahi",
    "bilkul",
];

const NEGATIVE: &[&str] = &[
    "not",
    "no",
    "never",
    "annoying",
    "annoyed",
    "stop",
    "angry",
    "waste",
    "bad",
    "terrible",
    "horrible",
    "irritating",
    "irritated",
    "useless",
    "spam",
    "fraud",
    "worst",
    "hate",
    "rude",
    "bakwas",
    "pareshan",
    "nahi",
    "mat",
    "gussa",
    "bekar",
    "bekaar",
    "faltu",
];

/// The outcome the transcript's words point to.
pub fn outcome(t: &Transcript) -> CallOutcome {
    let customer = t.customer();
    let agent = t.agent();
    let everyone = t.all();
    if has_any(&customer, DO_NOT_CALL) {
        return CallOutcome::DoNotCall;
    }
    if has_any(&customer, WRONG_NUMBER) {
        return CallOutcome::WrongNumber;
    }
    if has_any(&customer, VOICEMAIL) {
        return CallOutcome::Voicemail;
    }
    if has_any(&customer, OPERATOR) && !has_any(&agent, &["how are you"]) {
        return CallOutcome::NoAnswer;
    }
    let refused = has_any(&customer, NOT_INTERESTED);
    let booked = has_any(&customer, BOOKING_ASKED)
        || (has_any(&agent, BOOKING_CONFIRMED) && count_any(&customer, CUSTOMER_YES) > 0);
    if booked && !refused {
        return CallOutcome::AppointmentBooked;
    }
    if has_any(&customer, CALL_BACK) {
        return CallOutcome::CallbackRequested;
    }
    if refused {
        return CallOutcome::NotInterested;
    }
    if has_any(&customer, BUSY) {
        return CallOutcome::CallbackRequested;
    }
    if has_any(&customer, INTERESTED) {
        return CallOutcome::Interested;
    }
    if has_any(&everyone, VOICEMAIL) {
        return CallOutcome::Voicemail;
    }
    CallOutcome::Other
}

/// -1..1 from the customer's words, leaning with the outcome.
pub fn sentiment_score(t: &Transcript, outcome: CallOutcome) -> f64 {
    let customer = t.customer();
    let positive = count_any(&customer, POSITIVE) as f64;
    let negative = count_any(&customer, NEGATIVE) as f64;
    let lexical = (positive - negative) / (positive + negative + 2.0);
    let lean = match outcome {
        CallOutcome::AppointmentBooked => 0.4,
        CallOutcome::Interested => 0.25,
        CallOutcome::CallbackRequested => 0.05,
        CallOutcome::NotInterested => -0.25,
        CallOutcome::DoNotCall => -0.5,
        CallOutcome::WrongNumber => -0.1,
        _ => 0.0,
    };
    ((lexical + lean) * 100.0).round().clamp(-100.0, 100.0) / 100.0
}

fn summary(outcome: CallOutcome, when: Option<&str>) -> String {
    let at = when.map(|w| format!(" ({w})")).unwrap_or_default();
    match outcome {
        CallOutcome::AppointmentBooked => format!("Appointment booked{at}."),
        CallOutcome::CallbackRequested => format!("Asked to be called back{at}."),
        CallOutcome::Interested => "Interested; asked for more information.".into(),
        CallOutcome::NotInterested => "Not interested.".into(),
        CallOutcome::DoNotCall => "Asked not to be called again.".into(),
        CallOutcome::Voicemail => "Reached voicemail.".into(),
        CallOutcome::NoAnswer => {
            "Not answered: the network said the number could not be reached.".into()
        }
        CallOutcome::WrongNumber => "Wrong number.".into(),
        CallOutcome::Other => "Conversation without a clear outcome.".into(),
    }
}

/// Analyses a transcript. `None` when there is too little to analyse (fewer than
/// `MIN_WORDS` words, or no customer turn).
pub fn analyze(text: &str, fields: &[AnalysisField]) -> Option<Analysis> {
    let t = Transcript::parse(text);
    if t.word_count() < super::MIN_WORDS || !t.has_customer_turn() {
        return None;
    }
    let outcome = outcome(&t);
    let score = sentiment_score(&t, outcome);
    let when = matches!(
        outcome,
        CallOutcome::AppointmentBooked | CallOutcome::CallbackRequested
    )
    .then(|| extract::when(&t))
    .flatten();
    Some(Analysis {
        sentiment: sentiment_of(score),
        sentiment_score: score,
        outcome,
        summary: summary(outcome, when.as_deref()),
        extracted: extract::fill(fields, &t, outcome),
        model: MODEL.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::types::Sentiment;

    /// The labelled table: blocks separated by a blank line, each starting `# OUTCOME`.
    const TABLE: &str = include_str!("heuristic_table.txt");

    fn cases() -> Vec<(CallOutcome, String)> {
        TABLE
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(|b| {
                let (head, body) = b.trim().split_once('\n').unwrap();
                let label = head.trim_start_matches('#').trim();
                (label.parse().unwrap(), body.to_owned())
            })
            .collect()
    }

    #[test]
    fn accuracy_on_the_table_is_at_least_90_percent_per_outcome() {
        let cases = cases();
        assert!(cases.len() >= 60, "only {} cases", cases.len());
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut wrong = Vec::new();
        for (expected, text) in &cases {
            let got = analyze(text, &[]).map(|a| a.outcome);
            let entry = per.entry(expected.as_str()).or_default();
            entry.1 += 1;
            if got == Some(*expected) {
                entry.0 += 1;
            } else {
                wrong.push(format!("expected {expected}, got {got:?}: {text}"));
            }
        }
        let total: usize = per.values().map(|v| v.0).sum();
        eprintln!(
            "heuristic-v1 on {} transcripts: {:.1}% overall",
            cases.len(),
            100.0 * total as f64 / cases.len() as f64
        );
        for (outcome, (right, n)) in &per {
            eprintln!(
                "  {outcome:<20} {right}/{n} = {:.0}%",
                100.0 * *right as f64 / *n as f64
            );
        }
        for w in &wrong {
            eprintln!("  miss: {w}");
        }
        for (outcome, (right, n)) in &per {
            assert!(
                *right as f64 >= 0.9 * *n as f64,
                "{outcome}: {right}/{n}; misses:\n{}",
                wrong.join("\n")
            );
        }
    }

    #[test]
    fn too_little_to_analyse_is_skipped() {
        assert_eq!(analyze("user: ok bye", &[]), None);
        assert_eq!(
            analyze(
                "assistant: Hello, is this Priya? Hello? Are you there?",
                &[]
            ),
            None
        );
        assert_eq!(analyze("", &[]), None);
    }

    #[test]
    fn sentiment_follows_the_words_and_the_outcome() {
        let happy = analyze("assistant: Shall I book Tuesday?\nuser: Yes perfect, book it. Thank you so much, great", &[]).unwrap();
        assert_eq!(happy.outcome, CallOutcome::AppointmentBooked);
        assert_eq!(happy.sentiment, Sentiment::Positive);
        assert!(happy.sentiment_score > 0.5 && happy.sentiment_score <= 1.0);
        let angry = analyze(
            "user: This is spam, stop calling me, I hate these calls",
            &[],
        )
        .unwrap();
        assert_eq!(angry.outcome, CallOutcome::DoNotCall);
        assert_eq!(angry.sentiment, Sentiment::Negative);
        assert!(angry.sentiment_score >= -1.0);
        assert_eq!(angry.model, MODEL);
    }

    #[test]
    fn the_summary_names_the_agreed_time() {
        let a = analyze(
            "assistant: When suits you?\nuser: Call me back tomorrow at 5 pm please",
            &[],
        )
        .unwrap();
        assert_eq!(a.outcome, CallOutcome::CallbackRequested);
        assert_eq!(a.summary, "Asked to be called back (tomorrow 5 pm).");
    }
}
