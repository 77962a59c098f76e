//! What calls say about the lead: its name, and where it stands in the funnel.
//!
//! A lead status moves forward along the funnel only, unless the newest call's extracted
//! intent says otherwise (an interested lead who later says no is NOT_INTERESTED).
//! DO_NOT_CALL is never left.

use chrono::{DateTime, Utc};

use crate::providers::CallReport;
use crate::types::{CallStatus, LeadStatus};

/// Where a status stands in the funnel.
pub(crate) fn funnel_rank(status: LeadStatus) -> i32 {
    match status {
        LeadStatus::New => 0,
        LeadStatus::Contacted => 1,
        LeadStatus::NotInterested => 2,
        LeadStatus::Callback => 3,
        LeadStatus::Interested => 4,
        LeadStatus::Booked => 5,
        LeadStatus::DoNotCall => 6,
    }
}

/// [`funnel_rank`] of a status column, in SQL.
pub(crate) fn funnel_rank_sql(column: &str) -> String {
    format!(
        "CASE {column} WHEN 'NEW' THEN 0 WHEN 'CONTACTED' THEN 1 WHEN 'NOT_INTERESTED' THEN 2 \
         WHEN 'CALLBACK' THEN 3 WHEN 'INTERESTED' THEN 4 WHEN 'BOOKED' THEN 5 ELSE 6 END"
    )
}

fn further(a: LeadStatus, b: LeadStatus) -> LeadStatus {
    if funnel_rank(b) > funnel_rank(a) {
        b
    } else {
        a
    }
}

/// The lead status a call's extracted intent or outcome implies.
pub fn intent_of(extracted: &serde_json::Value) -> Option<LeadStatus> {
    let obj = extracted.as_object()?;
    for key in [
        "intent",
        "outcome",
        "lead_status",
        "disposition",
        "call_outcome",
        "status",
    ] {
        let Some(text) = obj.get(key).and_then(|v| v.as_str()) else {
            continue;
        };
        let t = text.to_ascii_lowercase().replace(['_', '-'], " ");
        let status = if t.contains("do not call") || t.contains("dnc") || t.contains("stop calling")
        {
            LeadStatus::DoNotCall
        } else if t.contains("not interested") || t.contains("uninterested") {
            LeadStatus::NotInterested
        } else if t.contains("book") || t.contains("appointment") || t.contains("scheduled") {
            LeadStatus::Booked
        } else if t.contains("call back") || t.contains("callback") {
            LeadStatus::Callback
        } else if t.contains("interested") {
            LeadStatus::Interested
        } else {
            continue;
        };
        return Some(status);
    }
    match obj.get("interested").and_then(|v| v.as_bool()) {
        Some(true) => Some(LeadStatus::Interested),
        Some(false) => Some(LeadStatus::NotInterested),
        None => None,
    }
}

/// A name from extracted data or what the caller passed (`name`, `customer_name`, first + last).
pub(crate) fn recipient_name(data: &serde_json::Value) -> Option<String> {
    let s = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    s("name")
        .or_else(|| s("customer_name"))
        .or_else(|| match (s("first_name"), s("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f),
            (None, Some(l)) => Some(l),
            _ => None,
        })
        .map(|n| n.chars().take(200).collect())
}

/// The customer's name a report offers: the provider's extraction first, then what the
/// caller passed for the call.
pub(crate) fn name_of(report: &CallReport) -> Option<String> {
    report
        .extracted_data
        .as_ref()
        .and_then(recipient_name)
        .or_else(|| report.recipient_data.as_ref().and_then(recipient_name))
}

/// What the reports about one customer (in one batch) do to its lead status. The reports
/// count as applied in time order: each moves the status forward, and one with an
/// extracted intent that is newer than every earlier contact sets it outright.
#[derive(Debug, Default, Clone)]
pub(crate) struct LeadPlan {
    /// (when, target, from an intent)
    moves: Vec<(DateTime<Utc>, LeadStatus, bool)>,
}

/// The plan in the terms of one `UPDATE`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadChange {
    /// Applies when the customer's last contact before this batch is no later than `at`.
    pub set: Option<(LeadStatus, DateTime<Utc>)>,
    /// Otherwise the status moves forward to this one (if it is further).
    pub forward: Option<LeadStatus>,
    /// A call asked not to be called again.
    pub do_not_call: bool,
}

impl LeadPlan {
    /// Adds a report made at `at`: its intent, or CONTACTED once a call connected.
    pub(crate) fn add(&mut self, report: &CallReport, at: DateTime<Utc>) {
        let intent = report.extracted_data.as_ref().and_then(intent_of);
        let connected = matches!(
            report.status,
            CallStatus::InProgress | CallStatus::CallDisconnected | CallStatus::Completed
        );
        if let Some(target) = intent.or(connected.then_some(LeadStatus::Contacted)) {
            self.moves.push((at, target, intent.is_some()));
        }
    }

    pub(crate) fn change(&self) -> LeadChange {
        let forward = self.moves.iter().map(|m| m.1).reduce(further);
        let newest_intent = self
            .moves
            .iter()
            .filter(|m| m.2)
            .max_by_key(|m| m.0)
            .map(|m| (m.0, m.1));
        let set = newest_intent.map(|(at, target)| {
            // Later contacts still move it forward from there.
            let after = self
                .moves
                .iter()
                .filter(|m| m.0 > at)
                .map(|m| m.1)
                .fold(target, further);
            (after, at)
        });
        LeadChange {
            set,
            forward,
            do_not_call: self.moves.iter().any(|m| m.1 == LeadStatus::DoNotCall),
        }
    }
}

impl LeadChange {
    /// The status of a customer these reports create.
    pub(crate) fn initial(&self) -> LeadStatus {
        self.set
            .map(|s| s.0)
            .or(self.forward)
            .unwrap_or(LeadStatus::New)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Provider;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn intents_map_to_lead_statuses() {
        for (v, s) in [
            (json!({"intent": "Booked"}), Some(LeadStatus::Booked)),
            (
                json!({"outcome": "appointment_booked"}),
                Some(LeadStatus::Booked),
            ),
            (
                json!({"intent": "not-interested"}),
                Some(LeadStatus::NotInterested),
            ),
            (
                json!({"disposition": "Call back later"}),
                Some(LeadStatus::Callback),
            ),
            (
                json!({"intent": "interested"}),
                Some(LeadStatus::Interested),
            ),
            (
                json!({"outcome": "do_not_call"}),
                Some(LeadStatus::DoNotCall),
            ),
            (
                json!({"interested": false}),
                Some(LeadStatus::NotInterested),
            ),
            (json!({"budget": "40000"}), None),
            (json!("text"), None),
        ] {
            assert_eq!(intent_of(&v), s, "{v}");
        }
    }

    #[test]
    fn names_from_extraction_or_recipient_data() {
        assert_eq!(
            recipient_name(&json!({"first_name": "Ann", "last_name": "Lee"})).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            recipient_name(&json!({"customer_name": " Priya "})).as_deref(),
            Some("Priya")
        );
        assert_eq!(recipient_name(&json!({"name": ""})), None);
    }

    fn report(status: CallStatus, intent: Option<&str>) -> CallReport {
        let mut r = CallReport::new(Provider::Bolna, "x", status);
        r.extracted_data = intent.map(|i| json!({ "intent": i }));
        r
    }

    #[test]
    fn newest_intent_sets_the_status_and_later_contacts_only_move_it_forward() {
        let t = |h| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap();
        let mut plan = LeadPlan::default();
        plan.add(&report(CallStatus::Completed, Some("booked")), t(1));
        plan.add(&report(CallStatus::Completed, Some("not interested")), t(3));
        plan.add(&report(CallStatus::Completed, None), t(4));
        plan.add(&report(CallStatus::Ringing, None), t(5));
        let change = plan.change();
        assert_eq!(change.set, Some((LeadStatus::NotInterested, t(3))));
        assert_eq!(change.forward, Some(LeadStatus::Booked));
        assert_eq!(change.initial(), LeadStatus::NotInterested);
        assert!(!change.do_not_call);

        let mut plan = LeadPlan::default();
        plan.add(&report(CallStatus::InProgress, None), t(1));
        assert_eq!(plan.change().initial(), LeadStatus::Contacted);
        assert_eq!(plan.change().set, None);
        assert_eq!(LeadPlan::default().change().initial(), LeadStatus::New);
    }
}
