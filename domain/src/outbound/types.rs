//! The events an endpoint can subscribe to, and its filters (`call.completed`, `call.*`,
//! `*`).

use crate::error::{DomainError, DomainResult};

/// Every event type this product sends. Names are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    CallStatusChanged,
    CallCompleted,
    CallAnalyzed,
    CustomerCreated,
    CustomerUpdated,
    CampaignStarted,
    CampaignPaused,
    CampaignResumed,
    CampaignCompleted,
    CampaignCanceled,
    CampaignItemFinished,
    SyncRunFinished,
    CrmSyncFailing,
    BalanceLow,
    BalanceDepleted,
    WhatsAppConnectionFailing,
    EndpointDisabled,
    Test,
}

impl EventType {
    pub const ALL: [EventType; 18] = [
        EventType::CallStatusChanged,
        EventType::CallCompleted,
        EventType::CallAnalyzed,
        EventType::CustomerCreated,
        EventType::CustomerUpdated,
        EventType::CampaignStarted,
        EventType::CampaignPaused,
        EventType::CampaignResumed,
        EventType::CampaignCompleted,
        EventType::CampaignCanceled,
        EventType::CampaignItemFinished,
        EventType::SyncRunFinished,
        EventType::CrmSyncFailing,
        EventType::BalanceLow,
        EventType::BalanceDepleted,
        EventType::WhatsAppConnectionFailing,
        EventType::EndpointDisabled,
        EventType::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallStatusChanged => "call.status_changed",
            EventType::CallCompleted => "call.completed",
            EventType::CallAnalyzed => "call.analyzed",
            EventType::CustomerCreated => "customer.created",
            EventType::CustomerUpdated => "customer.updated",
            EventType::CampaignStarted => "campaign.started",
            EventType::CampaignPaused => "campaign.paused",
            EventType::CampaignResumed => "campaign.resumed",
            EventType::CampaignCompleted => "campaign.completed",
            EventType::CampaignCanceled => "campaign.canceled",
            EventType::CampaignItemFinished => "campaign.item_finished",
            EventType::SyncRunFinished => "sync_run.finished",
            EventType::CrmSyncFailing => "crm.sync_failing",
            EventType::BalanceLow => "balance.low",
            EventType::BalanceDepleted => "balance.depleted",
            EventType::WhatsAppConnectionFailing => "whatsapp.connection_failing",
            EventType::EndpointDisabled => "webhook_endpoint.disabled",
            EventType::Test => "webhook.test",
        }
    }
}

/// Most filters one endpoint may hold.
pub const MAX_FILTERS: usize = 50;

/// An endpoint's subscription: exact names, `group.*`, or `*`. Empty means every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter(Vec<String>);

impl Filter {
    /// Validates filters a user sent: each an event name, `group.*` of a known group, or
    /// `*`; duplicates dropped.
    pub fn parse(raw: &[String]) -> DomainResult<Filter> {
        if raw.len() > MAX_FILTERS {
            return Err(DomainError::invalid(
                "events",
                format!("at most {MAX_FILTERS} event filters"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for f in raw {
            let f = f.trim();
            let known = f == "*"
                || EventType::ALL.iter().any(|t| t.as_str() == f)
                || f.strip_suffix(".*").is_some_and(|group| {
                    EventType::ALL
                        .iter()
                        .any(|t| t.as_str().split('.').next() == Some(group))
                });
            if !known {
                let shown: String = f.chars().take(60).collect();
                return Err(DomainError::invalid(
                    "events",
                    format!(
                        "unknown event {shown:?}; use one of {}, a group such as call.*, or *",
                        EventType::ALL
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !out.iter().any(|o| o == f) {
                out.push(f.to_owned());
            }
        }
        Ok(Filter(out))
    }

    /// Reads filters as stored (unknown entries kept: they match nothing).
    pub fn from_json(v: &serde_json::Value) -> Filter {
        Filter(
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::from(self.0.clone())
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn matches(&self, event: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|f| {
                f == "*"
                    || f == event
                    || f.strip_suffix('*')
                        .is_some_and(|prefix| prefix.ends_with('.') && event.starts_with(prefix))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(v: &[&str]) -> DomainResult<Filter> {
        Filter::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn filters_match_names_groups_and_everything() {
        let f = filter(&["call.completed", "customer.*"]).expect("valid");
        assert!(f.matches("call.completed"));
        assert!(!f.matches("call.status_changed"));
        assert!(f.matches("customer.updated"));
        assert!(!f.matches("customers.updated"));
        assert!(filter(&["*"]).expect("valid").matches("sync_run.finished"));
        assert!(filter(&[]).expect("valid").matches("call.analyzed"));
    }

    #[test]
    fn unknown_filters_are_refused() {
        for bad in ["call.exploded", "nope.*", "call", "", "c*"] {
            assert!(filter(&[bad]).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_FILTERS).map(|_| "*".to_owned()).collect();
        assert!(Filter::parse(&many).is_err());
        assert_eq!(filter(&["*", "*"]).expect("valid").names().len(), 1);
    }
}
