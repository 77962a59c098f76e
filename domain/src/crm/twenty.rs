//! Twenty's REST API for people and the signature on its webhooks.
//!
//! Lists are `{"data":{"people":[…]},"pageInfo":{"hasNextPage","endCursor"}}`, paged with
//! `starting_after`; batch writes take at most 60 records; creates answer under
//! `createPeople`, `createPerson` or `people` depending on the server's version. Phones
//! are stored as a national number with a calling code and a country, though some clients
//! write the full E.164 number into the national field: both are read.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fields::{Field, FieldMapping, Values};
use crate::http::{Auth, Budget, HttpClient, HttpError, HttpResult};
use crate::phone::{PhoneNumber, Region};

/// Records per list page and per batch write (Twenty's own ceiling for batches).
pub const PAGE: usize = 60;

/// One tenant's Twenty workspace, ready to call.
pub struct Account {
    pub base_url: String,
    pub auth: Auth,
    pub http: HttpClient,
    pub budget: Option<Arc<Budget>>,
}

/// A person as read from Twenty.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub updated_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub values: Values,
    /// The phone as written there when it could not be read as a number.
    pub unreadable_phone: Option<String>,
}

pub struct PeoplePage {
    pub people: Vec<Value>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct ListBody {
    data: Option<ListData>,
    #[serde(rename = "pageInfo")]
    page_info: Option<PageInfo>,
}

#[derive(Deserialize)]
struct ListData {
    #[serde(default)]
    people: Vec<Value>,
}

#[derive(Deserialize)]
struct PageInfo {
    #[serde(rename = "hasNextPage", default)]
    has_next_page: bool,
    #[serde(rename = "endCursor")]
    end_cursor: Option<String>,
}

impl Account {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn client(&self) -> HttpClient {
        self.http.with_budget(self.budget.clone())
    }

    /// People changed at or after `since`, oldest change first, from `after` (a cursor).
    pub async fn people_since(
        &self,
        since: Option<DateTime<Utc>>,
        after: Option<&str>,
    ) -> HttpResult<PeoplePage> {
        let mut query = vec![
            ("order_by", "updatedAt[AscNullsFirst]".to_owned()),
            ("limit", PAGE.to_string()),
        ];
        if let Some(since) = since {
            query.push((
                "filter",
                format!(
                    "updatedAt[gte]:\"{}\"",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            ));
        }
        if let Some(after) = after {
            query.push(("starting_after", after.to_owned()));
        }
        let body: ListBody = self
            .client()
            .get_json(&self.url("/rest/people"), &query, &self.auth)
            .await?;
        let people = body.data.map(|d| d.people).unwrap_or_default();
        let next = body
            .page_info
            .filter(|p| p.has_next_page && !people.is_empty())
            .and_then(|p| p.end_cursor)
            .filter(|c| !c.is_empty() && c.len() <= 1000);
        Ok(PeoplePage { people, next })
    }

    /// People whose primary phone is one of `numbers` (written either way Twenty may hold
    /// it: national digits or full E.164). At most [`PAGE`] / 2 numbers a call.
    pub async fn people_with_phones(&self, numbers: &[&PhoneNumber]) -> HttpResult<Vec<Value>> {
        let mut forms: Vec<String> = Vec::new();
        for n in numbers {
            forms.push(n.as_str().to_owned());
            if let Some(p) = n.parts() {
                forms.push(p.national);
            }
        }
        if forms.is_empty() {
            return Ok(Vec::new());
        }
        let list = forms
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(",");
        let query = vec![
            ("filter", format!("phones.primaryPhoneNumber[in]:[{list}]")),
            ("limit", PAGE.to_string()),
        ];
        let body: ListBody = self
            .client()
            .get_json(&self.url("/rest/people"), &query, &self.auth)
            .await?;
        Ok(body.data.map(|d| d.people).unwrap_or_default())
    }

    /// Creates or updates up to [`PAGE`] people (updates carry their `id`). Returns the
    /// records Twenty answered with, in the order sent when it answers with all of them.
    pub async fn upsert(&self, records: Vec<Value>) -> HttpResult<Vec<Value>> {
        let body: Value = self
            .client()
            .post_json_once(
                &self.url("/rest/batch/people?upsert=true"),
                &Value::Array(records),
                &self.auth,
            )
            .await?;
        let data = &body["data"];
        let list = ["createPeople", "people", "upsertPeople"]
            .iter()
            .find_map(|k| data[*k].as_array().cloned())
            .or_else(|| {
                data["createPerson"]
                    .is_object()
                    .then(|| vec![data["createPerson"].clone()])
            })
            .or_else(|| body.as_array().cloned());
        list.ok_or_else(|| HttpError::Decode("no people in Twenty's answer".into()))
    }

    /// Deletes a person (Twenty keeps it restorable); one already gone is not an error.
    pub async fn delete(&self, id: &str) -> HttpResult<()> {
        let id = crate::http::path_segment(id)?;
        match self
            .client()
            .delete(&self.url(&format!("/rest/people/{id}")), &self.auth)
            .await
        {
            Err(HttpError::NotFound) => Ok(()),
            other => other,
        }
    }

    /// One cheap read: the key works and the workspace answers.
    pub async fn probe(&self) -> HttpResult<()> {
        let _: Value = self
            .http
            .get_json(
                &self.url("/rest/people"),
                &[("limit", "1".to_owned())],
                &self.auth,
            )
            .await?;
        Ok(())
    }
}

/// Longest text value taken from a CRM record (names, emails, statuses).
const MAX_TEXT: usize = 500;

fn text(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    (!s.is_empty()).then(|| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(MAX_TEXT)
            .collect()
    })
}

/// Reads a person record. `None`: not a person (no id).
pub fn read_person(record: &Value, mapping: &FieldMapping, region: Region) -> Option<Person> {
    let id = record["id"].as_str()?.trim();
    if id.is_empty() || crate::http::path_segment(id).is_err() {
        return None;
    }
    let mut values = Values::default();
    let first = text(&record["name"]["firstName"]);
    let last = text(&record["name"]["lastName"]);
    let name = match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
    values.set(Field::Name, name);
    values.set(
        Field::Email,
        text(&record["emails"]["primaryEmail"]).map(|e| e.to_lowercase()),
    );
    let phones = &record["phones"];
    let raw = text(&phones["primaryPhoneNumber"]);
    let mut unreadable_phone = None;
    if let Some(raw) = raw {
        match read_phone(
            &raw,
            text(&phones["primaryPhoneCallingCode"]).as_deref(),
            text(&phones["primaryPhoneCountryCode"]).as_deref(),
            region,
        ) {
            Some(n) => values.set(Field::Phone, Some(n.into_string())),
            None => unreadable_phone = Some(raw),
        }
    }
    for f in [
        Field::LeadStatus,
        Field::LeadScore,
        Field::Segment,
        Field::LastCallSummary,
    ] {
        if let Some(name) = mapping.name_of(f) {
            let v = &record[name];
            let s = match v {
                Value::Number(n) => n.as_f64().map(score_text),
                _ => text(v),
            };
            values.set(f, s);
        }
    }
    let updated_at = record["updatedAt"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let deleted = !record["deletedAt"].is_null() && record.get("deletedAt").is_some();
    Some(Person {
        id: id.to_owned(),
        updated_at,
        deleted,
        values,
        unreadable_phone,
    })
}

/// A lead score as the text both sides compare (at most two decimals, no trailing zeros).
pub fn score_text(v: f64) -> String {
    let s = format!("{:.2}", (v * 100.0).round() / 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A phone in any of the forms Twenty holds: `+E.164` in the number field, or national
/// digits with a calling code (`+91`) or a country (`IN`), else the tenant's region.
fn read_phone(
    number: &str,
    calling_code: Option<&str>,
    country: Option<&str>,
    region: Region,
) -> Option<PhoneNumber> {
    if number.trim_start().starts_with('+') {
        return PhoneNumber::parse(number, region).ok();
    }
    if let Some(cc) = calling_code {
        let digits: String = cc.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty()
            && digits.len() <= 4
            && let Ok(n) = PhoneNumber::parse(&format!("+{digits} {number}"), region)
        {
            return Some(n);
        }
    }
    if let Some(r) = country.and_then(|c| Region::parse(c).ok())
        && let Ok(n) = PhoneNumber::parse(number, r)
    {
        return Some(n);
    }
    PhoneNumber::parse(number, region).ok()
}

/// The record to send for a customer: `fields` of `values` in Twenty's shapes, with `id`
/// when it exists there.
pub fn person_record(
    id: Option<&str>,
    values: &Values,
    fields: &[Field],
    mapping: &FieldMapping,
) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    for &f in fields {
        let v = values.get(f);
        match f {
            Field::Name => {
                let (first, last) = match v.map(str::trim) {
                    Some(n) => match n.split_once(' ') {
                        Some((a, b)) => (a.to_owned(), b.trim().to_owned()),
                        None => (n.to_owned(), String::new()),
                    },
                    None => (String::new(), String::new()),
                };
                m.insert("name".into(), json!({"firstName": first, "lastName": last}));
            }
            Field::Email => {
                m.insert("emails".into(), json!({"primaryEmail": v.unwrap_or("")}));
            }
            Field::Phone => {
                if let Some(p) =
                    v.and_then(|v| PhoneNumber::from_e164_unchecked(v.to_owned()).parts())
                {
                    m.insert(
                        "phones".into(),
                        json!({
                            "primaryPhoneNumber": p.national,
                            "primaryPhoneCallingCode": p.calling_code,
                            "primaryPhoneCountryCode": p.country.unwrap_or_default(),
                        }),
                    );
                }
            }
            Field::LeadScore => {
                if let Some(name) = mapping.name_of(f) {
                    let n = v.and_then(|s| s.parse::<f64>().ok());
                    m.insert(name.into(), json!(n));
                }
            }
            Field::LeadStatus | Field::Segment | Field::LastCallSummary => {
                if let Some(name) = mapping.name_of(f) {
                    m.insert(name.into(), json!(v));
                }
            }
        }
    }
    Value::Object(m)
}

/// How far a webhook's timestamp may be from now.
pub const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Checks `X-Twenty-Webhook-Signature`: hex HMAC-SHA256, keyed with the secret's UTF-8
/// bytes, of `"{timestamp}:{body}"`, the timestamp (ms) within [`TOLERANCE_MS`] of now.
pub fn verify(secret: &str, timestamp: &str, signature: &str, body: &[u8], now_ms: i64) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now_ms.abs_diff(ts) > TOLERANCE_MS.unsigned_abs() {
        return false;
    }
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = Vec::with_capacity(body.len() + 16);
    message.extend_from_slice(timestamp.trim().as_bytes());
    message.push(b':');
    message.extend_from_slice(body);
    // Constant-time comparison.
    ring::hmac::verify(&key, &message, &given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        Region::parse("US").unwrap()
    }

    #[test]
    fn phones_in_every_form_twenty_holds() {
        let national = json!({"id": "p1", "phones": {"primaryPhoneNumber": "9812345678", "primaryPhoneCallingCode": "+91", "primaryPhoneCountryCode": "IN"}});
        let e164 = json!({"id": "p2", "phones": {"primaryPhoneNumber": "+919812345678"}});
        let country_only = json!({"id": "p3", "phones": {"primaryPhoneNumber": "09812345678", "primaryPhoneCountryCode": "IN"}});
        let m = FieldMapping::default();
        for r in [national, e164, country_only] {
            let p = read_person(&r, &m, region()).unwrap();
            assert_eq!(p.values.get(Field::Phone), Some("+919812345678"), "{r}");
        }
        let junk = json!({"id": "p4", "phones": {"primaryPhoneNumber": "call me"}});
        let p = read_person(&junk, &m, region()).unwrap();
        assert_eq!(p.values.get(Field::Phone), None);
        assert_eq!(p.unreadable_phone.as_deref(), Some("call me"));
    }

    #[test]
    fn records_round_trip_through_our_shape() {
        let mapping = FieldMapping {
            lead_score: Some("leadScore".into()),
            lead_status: Some("leadStatus".into()),
            ..Default::default()
        };
        let mut v = Values::default();
        v.set(Field::Name, Some("Mary Jane Watson".into()));
        v.set(Field::Email, Some("mj@example.com".into()));
        v.set(Field::Phone, Some("+919812345678".into()));
        v.set(Field::LeadScore, Some("72.5".into()));
        v.set(Field::LeadStatus, Some("INTERESTED".into()));
        let fields = mapping.fields();
        let mut r = person_record(Some("abc"), &v, &fields, &mapping);
        assert_eq!(r["phones"]["primaryPhoneNumber"], "9812345678");
        assert_eq!(r["phones"]["primaryPhoneCallingCode"], "+91");
        assert_eq!(r["leadScore"], 72.5);
        r["updatedAt"] = json!("2026-12-06T10:00:00.000Z");
        let back = read_person(&r, &mapping, region()).unwrap();
        assert_eq!(back.values, v);
    }

    #[test]
    fn signatures_are_checked_with_their_timestamp() {
        let body = br#"{"eventName":"person.updated"}"#;
        let ts = "1733480000000";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let sig = hex::encode(ring::hmac::sign(
            &key,
            &[format!("{ts}:").as_bytes(), body].concat(),
        ));
        let now = 1_733_480_000_000 + 1000;
        assert!(verify("s3cret", ts, &sig, body, now));
        assert!(!verify("other", ts, &sig, body, now));
        assert!(!verify("s3cret", ts, &sig, b"{}", now));
        assert!(!verify("s3cret", ts, &sig, body, now + TOLERANCE_MS + 1));
        assert!(!verify("s3cret", ts, "zz", body, now));
    }
}
