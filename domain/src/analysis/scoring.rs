//! Lead scoring across all of a customer's calls: a tenant's rule set (or the defaults)
//! gives a score 0–100, a segment (HOT / WARM / COLD) and, for each rule, the points it
//! contributed. Every call's contribution fades with its age (a half-life), so a booking
//! last week outweighs one last year.
//!
//! Default rules (documented in the README): base 20; per analysed call the outcome's
//! weight (booked +40, interested +25, callback +15, not interested −25, do not call −100,
//! wrong number −50, voicemail −2, no answer −3); sentiment ±10 (the call's score −1..1
//! times 10); connected talk time +2 per minute, at most +15; unanswered attempts −4 each,
//! at most −20; half-life 30 days; HOT from 70, WARM from 40.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::types::{CallOutcome, CallStatus, LeadStatus};

/// Field rules a tenant may set at most.
pub const MAX_FIELD_RULES: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldOp {
    /// The field has a value.
    Present,
    /// Equal to `value` (text compared without case; numbers and booleans by value).
    Equals,
    /// A number at least `value`.
    AtLeast,
    /// A number at most `value`.
    AtMost,
}

/// Points for a custom field's value in the newest analysis that filled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldRule {
    pub field: String,
    pub op: FieldOp,
    #[serde(default)]
    pub value: Option<String>,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeWeight {
    pub outcome: CallOutcome,
    pub points: f64,
}

/// A tenant's scoring rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringRules {
    pub base: f64,
    pub outcome_weights: Vec<OutcomeWeight>,
    /// Points at a sentiment score of 1 (−this at −1).
    pub sentiment_weight: f64,
    pub talk_points_per_minute: f64,
    pub talk_max_points: f64,
    /// Points taken per unanswered attempt (busy, no answer), a positive number.
    pub unanswered_penalty: f64,
    pub unanswered_max_penalty: f64,
    pub half_life_days: f64,
    pub field_rules: Vec<FieldRule>,
    pub hot_threshold: f64,
    pub warm_threshold: f64,
}

impl Default for ScoringRules {
    fn default() -> Self {
        use CallOutcome::*;
        let w = |outcome, points| OutcomeWeight { outcome, points };
        ScoringRules {
            base: 20.0,
            outcome_weights: vec![
                w(AppointmentBooked, 40.0),
                w(Interested, 25.0),
                w(CallbackRequested, 15.0),
                w(NotInterested, -25.0),
                w(DoNotCall, -100.0),
                w(WrongNumber, -50.0),
                w(Voicemail, -2.0),
                w(NoAnswer, -3.0),
                w(Other, 0.0),
            ],
            sentiment_weight: 10.0,
            talk_points_per_minute: 2.0,
            talk_max_points: 15.0,
            unanswered_penalty: 4.0,
            unanswered_max_penalty: 20.0,
            half_life_days: 30.0,
            field_rules: Vec::new(),
            hot_threshold: 70.0,
            warm_threshold: 40.0,
        }
    }
}

impl ScoringRules {
    /// Checks a replacement rule set: finite numbers in sane ranges, one weight per
    /// outcome, thresholds in order, field rules naming a value where they compare one.
    pub fn validate(&self) -> DomainResult<()> {
        let bad =
            |field: &'static str, why: &str| DomainError::invalid(field, format!("{field}: {why}"));
        let within = |field: &'static str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(bad(field, &format!("must be between {lo} and {hi}")))
            }
        };
        within("base", self.base, -100.0, 100.0)?;
        within("sentimentWeight", self.sentiment_weight, -100.0, 100.0)?;
        within(
            "talkPointsPerMinute",
            self.talk_points_per_minute,
            -100.0,
            100.0,
        )?;
        within("talkMaxPoints", self.talk_max_points, 0.0, 100.0)?;
        within("unansweredPenalty", self.unanswered_penalty, 0.0, 100.0)?;
        within(
            "unansweredMaxPenalty",
            self.unanswered_max_penalty,
            0.0,
            100.0,
        )?;
        within("halfLifeDays", self.half_life_days, 0.5, 3650.0)?;
        within("hotThreshold", self.hot_threshold, 0.0, 100.0)?;
        within("warmThreshold", self.warm_threshold, 0.0, 100.0)?;
        if self.warm_threshold > self.hot_threshold {
            return Err(bad("warmThreshold", "must not be above hotThreshold"));
        }
        let mut seen = std::collections::HashSet::new();
        for w in &self.outcome_weights {
            within("outcomeWeights.points", w.points, -100.0, 100.0)?;
            if !seen.insert(w.outcome) {
                return Err(bad("outcomeWeights", "one weight per outcome"));
            }
        }
        if self.field_rules.len() > MAX_FIELD_RULES {
            return Err(bad(
                "fieldRules",
                &format!("at most {MAX_FIELD_RULES} rules"),
            ));
        }
        for r in &self.field_rules {
            within("fieldRules.points", r.points, -100.0, 100.0)?;
            if r.field.is_empty() || r.field.len() > 64 {
                return Err(bad("fieldRules.field", "1 to 64 characters"));
            }
            if r.value.as_ref().is_some_and(|v| v.len() > 100) {
                return Err(bad("fieldRules.value", "at most 100 characters"));
            }
            match (r.op, r.value.as_deref()) {
                (FieldOp::Present, _) => {}
                (FieldOp::Equals, Some(v)) if !v.is_empty() && v.len() <= 100 => {}
                (FieldOp::AtLeast | FieldOp::AtMost, Some(v))
                    if v.trim().parse::<f64>().is_ok_and(f64::is_finite) => {}
                _ => {
                    return Err(bad(
                        "fieldRules.value",
                        "EQUALS needs a value (up to 100 characters); AT_LEAST and AT_MOST a number",
                    ));
                }
            }
        }
        Ok(())
    }

    fn outcome_points(&self, outcome: CallOutcome) -> f64 {
        self.outcome_weights
            .iter()
            .find(|w| w.outcome == outcome)
            .map_or(0.0, |w| w.points)
    }
}

/// One call as scoring sees it.
#[derive(Debug, Clone)]
pub struct ScoredCall {
    pub at: DateTime<Utc>,
    pub status: CallStatus,
    pub duration_seconds: Option<f64>,
    /// The current analysis, when it is DONE.
    pub outcome: Option<CallOutcome>,
    pub sentiment_score: Option<f64>,
    pub extracted: Option<Value>,
}

/// One rule's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub rule: String,
    pub detail: String,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub score: f64,
    pub segment: &'static str,
    pub explanation: Vec<Contribution>,
}

/// The segment a score falls in under `rules`.
pub fn segment_of(rules: &ScoringRules, score: f64) -> &'static str {
    if score >= rules.hot_threshold {
        "HOT"
    } else if score >= rules.warm_threshold {
        "WARM"
    } else {
        "COLD"
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Scores a customer from its calls (any order) as of `now`. A customer on DO_NOT_CALL
/// scores 0 whatever its calls say.
pub fn score(
    rules: &ScoringRules,
    status: LeadStatus,
    calls: &[ScoredCall],
    now: DateTime<Utc>,
) -> Score {
    let mut explanation = vec![Contribution {
        rule: "base".into(),
        detail: "every lead starts here".into(),
        points: rules.base,
    }];
    let decay = |at: DateTime<Utc>| {
        let days = ((now - at).num_seconds().max(0) as f64) / 86_400.0;
        0.5f64.powf(days / rules.half_life_days)
    };
    let mut by_outcome: std::collections::BTreeMap<&'static str, (usize, f64)> = Default::default();
    let mut sentiment = (0usize, 0.0);
    let mut talk_minutes = 0.0;
    let mut talk = 0.0;
    let mut unanswered = (0usize, 0.0);
    for c in calls {
        let d = decay(c.at);
        if let Some(o) = c.outcome {
            let e = by_outcome.entry(o.as_str()).or_default();
            e.0 += 1;
            e.1 += rules.outcome_points(o) * d;
        }
        if let Some(s) = c.sentiment_score.filter(|s| s.is_finite()) {
            sentiment.0 += 1;
            sentiment.1 += s.clamp(-1.0, 1.0) * rules.sentiment_weight * d;
        }
        if matches!(c.status, CallStatus::Completed)
            && let Some(secs) = c.duration_seconds.filter(|s| s.is_finite() && *s > 0.0)
        {
            talk_minutes += secs / 60.0;
            talk += secs / 60.0 * rules.talk_points_per_minute * d;
        }
        if matches!(c.status, CallStatus::Busy | CallStatus::NoAnswer) {
            unanswered.0 += 1;
            unanswered.1 += rules.unanswered_penalty * d;
        }
    }
    for (outcome, (n, points)) in by_outcome {
        explanation.push(Contribution {
            rule: format!("outcome:{outcome}"),
            detail: format!("{n} call(s) with outcome {outcome}, faded by age"),
            points: round2(points),
        });
    }
    if sentiment.0 > 0 {
        explanation.push(Contribution {
            rule: "sentiment".into(),
            detail: format!(
                "sentiment of {} analysed call(s), faded by age",
                sentiment.0
            ),
            points: round2(sentiment.1),
        });
    }
    if talk_minutes > 0.0 {
        let points = if rules.talk_points_per_minute >= 0.0 {
            talk.min(rules.talk_max_points)
        } else {
            talk.max(-rules.talk_max_points)
        };
        explanation.push(Contribution {
            rule: "talkTime".into(),
            detail: format!("{talk_minutes:.1} connected minute(s)"),
            points: round2(points),
        });
    }
    if unanswered.0 > 0 {
        explanation.push(Contribution {
            rule: "unanswered".into(),
            detail: format!("{} unanswered attempt(s)", unanswered.0),
            points: round2(-unanswered.1.min(rules.unanswered_max_penalty)),
        });
    }
    // Field rules read the newest analysis that has the field.
    let mut newest_first: Vec<&ScoredCall> =
        calls.iter().filter(|c| c.extracted.is_some()).collect();
    newest_first.sort_by_key(|c| std::cmp::Reverse(c.at));
    for rule in &rules.field_rules {
        let value = newest_first.iter().find_map(|c| {
            c.extracted
                .as_ref()
                .and_then(|e| e.get(&rule.field))
                .filter(|v| !v.is_null())
        });
        if let Some(v) = value
            && field_matches(rule, v)
        {
            explanation.push(Contribution {
                rule: format!("field:{}", rule.field),
                detail: format!("{} {}", rule.field, describe(rule)),
                points: rule.points,
            });
        }
    }
    let total: f64 = explanation.iter().map(|c| c.points).sum();
    let mut score = round2(total.clamp(0.0, 100.0));
    if status == LeadStatus::DoNotCall {
        explanation.push(Contribution {
            rule: "doNotCall".into(),
            detail: "the customer asked not to be called".into(),
            points: round2(-score),
        });
        score = 0.0;
    }
    Score {
        score,
        segment: segment_of(rules, score),
        explanation,
    }
}

fn describe(rule: &FieldRule) -> String {
    let v = rule.value.as_deref().unwrap_or("");
    match rule.op {
        FieldOp::Present => "is known".into(),
        FieldOp::Equals => format!("is {v}"),
        FieldOp::AtLeast => format!("is at least {v}"),
        FieldOp::AtMost => format!("is at most {v}"),
    }
}

fn field_matches(rule: &FieldRule, v: &Value) -> bool {
    let wanted = rule.value.as_deref().unwrap_or("").trim();
    let number = || match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match rule.op {
        FieldOp::Present => match v {
            Value::String(s) => !s.trim().is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        },
        FieldOp::Equals => match v {
            Value::String(s) => s.trim().eq_ignore_ascii_case(wanted),
            Value::Bool(b) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            Value::Number(_) => number()
                .zip(wanted.parse::<f64>().ok())
                .is_some_and(|(a, b)| a == b),
            Value::Array(items) => items.iter().any(|i| {
                i.as_str()
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case(wanted))
            }),
            _ => false,
        },
        FieldOp::AtLeast => number()
            .zip(wanted.parse::<f64>().ok())
            .is_some_and(|(a, b)| a >= b),
        FieldOp::AtMost => number()
            .zip(wanted.parse::<f64>().ok())
            .is_some_and(|(a, b)| a <= b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn call(days_ago: i64, status: CallStatus, outcome: Option<CallOutcome>) -> ScoredCall {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        ScoredCall {
            at: now - Duration::days(days_ago),
            status,
            duration_seconds: (status == CallStatus::Completed).then_some(120.0),
            outcome,
            sentiment_score: outcome.map(|_| 0.5),
            extracted: None,
        }
    }

    #[test]
    fn a_sequence_of_calls_adds_up_and_explains_itself() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let rules = ScoringRules::default();
        let calls = vec![
            call(0, CallStatus::NoAnswer, None),
            call(0, CallStatus::Busy, None),
            call(0, CallStatus::Completed, Some(CallOutcome::Interested)),
        ];
        let s = score(&rules, LeadStatus::Interested, &calls, now);
        // 20 base + 25 interested + 5 sentiment + 4 talk (2 min) - 8 unanswered
        assert_eq!(s.score, 46.0);
        assert_eq!(s.segment, "WARM");
        let total: f64 = s.explanation.iter().map(|c| c.points).sum();
        assert_eq!(total, 46.0);

        let mut more = calls.clone();
        more.push(call(
            0,
            CallStatus::Completed,
            Some(CallOutcome::AppointmentBooked),
        ));
        let s = score(&rules, LeadStatus::Booked, &more, now);
        assert_eq!(s.score, 95.0);
        assert_eq!(s.segment, "HOT");

        // A booking 60 days old counts a quarter.
        let old = vec![call(
            60,
            CallStatus::Completed,
            Some(CallOutcome::AppointmentBooked),
        )];
        let s = score(&rules, LeadStatus::Booked, &old, now);
        assert_eq!(s.score, 20.0 + 10.0 + 1.25 + 1.0);

        let s = score(&rules, LeadStatus::DoNotCall, &more, now);
        assert_eq!((s.score, s.segment), (0.0, "COLD"));
    }

    #[test]
    fn field_rules_read_the_newest_value() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let rules = ScoringRules {
            field_rules: vec![
                FieldRule {
                    field: "budget".into(),
                    op: FieldOp::AtLeast,
                    value: Some("50000".into()),
                    points: 10.0,
                },
                FieldRule {
                    field: "plan".into(),
                    op: FieldOp::Equals,
                    value: Some("premium".into()),
                    points: 5.0,
                },
            ],
            ..ScoringRules::default()
        };
        rules.validate().unwrap();
        let mut a = call(2, CallStatus::Completed, None);
        a.extracted = Some(json!({"budget": 10000, "plan": "Premium"}));
        let mut b = call(1, CallStatus::Completed, None);
        b.extracted = Some(json!({"budget": "60000", "plan": null}));
        let s = score(&rules, LeadStatus::Contacted, &[a, b], now);
        let rules_hit: Vec<&str> = s.explanation.iter().map(|c| c.rule.as_str()).collect();
        assert!(rules_hit.contains(&"field:budget"), "{rules_hit:?}");
        assert!(rules_hit.contains(&"field:plan"), "{rules_hit:?}");
    }

    #[test]
    fn bad_rules_are_refused() {
        let mut r = ScoringRules {
            warm_threshold: 80.0,
            ..ScoringRules::default()
        };
        assert!(r.validate().is_err());
        r.warm_threshold = 40.0;
        r.half_life_days = f64::NAN;
        assert!(r.validate().is_err());
        r.half_life_days = 30.0;
        r.field_rules.push(FieldRule {
            field: "budget".into(),
            op: FieldOp::AtLeast,
            value: Some("lots".into()),
            points: 1.0,
        });
        assert!(r.validate().is_err());
        assert!(ScoringRules::default().validate().is_ok());
    }
}
