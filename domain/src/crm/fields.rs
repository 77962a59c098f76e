//! What the sync compares: one customer's values in the CRM's terms (`Values`), where the
//! tenant's custom CRM fields are (`FieldMapping`), and which side wins a conflict on a
//! field (`Overrides`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};

/// A synced field. Name, email, phone and lead status go both ways; score, segment and the
/// last call's summary are computed here and only pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Field {
    Name,
    Email,
    Phone,
    LeadStatus,
    LeadScore,
    Segment,
    LastCallSummary,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Name,
        Field::Email,
        Field::Phone,
        Field::LeadStatus,
        Field::LeadScore,
        Field::Segment,
        Field::LastCallSummary,
    ];

    /// Whether a change made in the CRM is taken here.
    pub fn two_way(self) -> bool {
        matches!(
            self,
            Field::Name | Field::Email | Field::Phone | Field::LeadStatus
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "NAME",
            Field::Email => "EMAIL",
            Field::Phone => "PHONE",
            Field::LeadStatus => "LEAD_STATUS",
            Field::LeadScore => "LEAD_SCORE",
            Field::Segment => "SEGMENT",
            Field::LastCallSummary => "LAST_CALL_SUMMARY",
        }
    }
}

/// Which side's value stands when both changed a field since they last agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    Crm,
    Switchboard,
}

/// A customer's synced values, as text (absent = empty). The lead score is its decimal
/// text, so values compare the same way whichever side they were read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Values(pub BTreeMap<Field, String>);

impl Values {
    pub fn get(&self, f: Field) -> Option<&str> {
        self.0.get(&f).map(String::as_str)
    }

    pub fn set(&mut self, f: Field, v: Option<String>) {
        match v.filter(|s| !s.is_empty()) {
            Some(v) => {
                self.0.insert(f, v);
            }
            None => {
                self.0.remove(&f);
            }
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Values {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Longest custom field name accepted (Twenty's API names are short camelCase).
const MAX_FIELD_NAME: usize = 63;

/// The tenant's custom CRM fields for what Switchboard computes. Unset: not synced (a
/// field the workspace lacks would make Twenty refuse every write).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    #[serde(default)]
    pub lead_status: Option<String>,
    #[serde(default)]
    pub lead_score: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
    #[serde(default)]
    pub last_call_summary: Option<String>,
}

/// Twenty's own person fields: a custom field may not take one of these names.
const RESERVED: &[&str] = &[
    "id",
    "name",
    "emails",
    "phones",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "createdBy",
    "updatedBy",
    "position",
    "company",
    "companyId",
    "jobTitle",
    "city",
    "avatarUrl",
    "linkedinLink",
    "xLink",
];

impl FieldMapping {
    pub fn from_json(v: &serde_json::Value) -> FieldMapping {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    /// The CRM field a mapped value lives in.
    pub fn name_of(&self, f: Field) -> Option<&str> {
        match f {
            Field::LeadStatus => self.lead_status.as_deref(),
            Field::LeadScore => self.lead_score.as_deref(),
            Field::Segment => self.segment.as_deref(),
            Field::LastCallSummary => self.last_call_summary.as_deref(),
            Field::Name | Field::Email | Field::Phone => None,
        }
    }

    /// The fields this mapping syncs.
    pub fn fields(&self) -> Vec<Field> {
        Field::ALL
            .into_iter()
            .filter(|f| {
                matches!(f, Field::Name | Field::Email | Field::Phone) || self.name_of(*f).is_some()
            })
            .collect()
    }

    /// Trims the names (blank = unset) and refuses anything but distinct camelCase names.
    pub fn validated(self) -> DomainResult<FieldMapping> {
        let clean = |v: Option<String>| -> DomainResult<Option<String>> {
            let Some(v) = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
                return Ok(None);
            };
            let ok = v.len() <= MAX_FIELD_NAME
                && v.starts_with(|c: char| c.is_ascii_lowercase())
                && v.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok {
                return Err(DomainError::invalid(
                    "fieldMapping",
                    format!(
                        "{v:?} is not a field name: use the field's API name in camelCase (letters and digits, up to {MAX_FIELD_NAME})"
                    ),
                ));
            }
            if RESERVED.contains(&v.as_str()) {
                return Err(DomainError::invalid(
                    "fieldMapping",
                    format!("{v:?} is one of Twenty's own person fields"),
                ));
            }
            Ok(Some(v))
        };
        let m = FieldMapping {
            lead_status: clean(self.lead_status)?,
            lead_score: clean(self.lead_score)?,
            segment: clean(self.segment)?,
            last_call_summary: clean(self.last_call_summary)?,
        };
        let names: Vec<&str> = [
            &m.lead_status,
            &m.lead_score,
            &m.segment,
            &m.last_call_summary,
        ]
        .into_iter()
        .filter_map(|n| n.as_deref())
        .collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(DomainError::invalid(
                    "fieldMapping",
                    format!("{n:?} is mapped twice"),
                ));
            }
        }
        Ok(m)
    }
}

/// Per two-way field, the side that wins a conflict; a field not listed goes to the side
/// whose record changed last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides(pub BTreeMap<Field, Side>);

impl Overrides {
    pub fn from_json(v: &serde_json::Value) -> Overrides {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    pub fn winner(&self, f: Field) -> Option<Side> {
        self.0.get(&f).copied()
    }

    pub fn validated(self) -> DomainResult<Overrides> {
        if let Some(f) = self.0.keys().find(|f| !f.two_way()) {
            return Err(DomainError::invalid(
                "overrides",
                format!(
                    "{} is only pushed to the CRM: it has no conflicts to settle",
                    f.as_str()
                ),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_refuse_bad_reserved_and_repeated_names() {
        let ok = FieldMapping {
            lead_status: Some(" leadStatus ".into()),
            lead_score: Some("".into()),
            ..Default::default()
        }
        .validated()
        .unwrap();
        assert_eq!(ok.lead_status.as_deref(), Some("leadStatus"));
        assert_eq!(ok.lead_score, None);
        for bad in [
            "Lead",
            "lead-status",
            "emails",
            "a".repeat(64).as_str(),
            "x y",
        ] {
            let m = FieldMapping {
                segment: Some(bad.into()),
                ..Default::default()
            };
            assert!(m.validated().is_err(), "{bad}");
        }
        let twice = FieldMapping {
            segment: Some("s".into()),
            lead_status: Some("s".into()),
            ..Default::default()
        };
        assert!(twice.validated().is_err());
    }

    #[test]
    fn values_round_trip_and_drop_empties() {
        let mut v = Values::default();
        v.set(Field::Email, Some("a@b.c".into()));
        v.set(Field::Name, Some(String::new()));
        assert_eq!(v.get(Field::Name), None);
        assert_eq!(Values::from_json(&v.to_json()), v);
    }
}
