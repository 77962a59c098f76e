//! A fake Twenty workspace written from its documented REST API: `GET /rest/people`
//! (`filter` with `updatedAt[gte]` and `phones.primaryPhoneNumber[in]`, `order_by`,
//! `limit`, `starting_after`, `pageInfo`), `POST /rest/batch/people?upsert=true` (at most
//! 60 records, upsert by id then by primary phone), `DELETE /rest/people/{id}` (soft),
//! Bearer keys, and scripted 429s and outages. It also signs webhooks the way Twenty does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const KEY: &str = "twenty-api-key";

#[derive(Default)]
struct Store {
    people: Vec<Value>,
    clock: Option<DateTime<Utc>>,
    /// Answers 429 to the next this-many requests.
    throttle: u32,
    /// Answers 503 to everything while set.
    down: bool,
    /// Answers 503 to writes only while set.
    writes_down: bool,
    requests: Vec<String>,
    batches: Vec<Value>,
    /// How long a batch write waits before it is applied and answered.
    write_delay: std::time::Duration,
    /// Batch writes received (counted before their delay).
    writes_started: usize,
}

impl Store {
    /// Strictly increasing times, so `updatedAt` orders changes.
    fn tick(&mut self) -> String {
        let now = Utc::now();
        let t = match self.clock {
            Some(last) if last >= now => last + Duration::milliseconds(1),
            _ => now,
        };
        self.clock = Some(t);
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

#[derive(Clone)]
pub struct FakeTwenty {
    pub url: String,
    store: Arc<Mutex<Store>>,
}

type Shared = Arc<Mutex<Store>>;

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn gate(s: &mut Store, headers: &HeaderMap, what: String) -> Option<Response> {
    s.requests.push(what);
    if s.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "down").into_response());
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                Json(json!({"statusCode": 429, "message": "Too many requests"})),
            )
                .into_response(),
        );
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {KEY}") {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"statusCode": 401, "message": "Token invalid"})),
            )
                .into_response(),
        );
    }
    None
}

async fn list(
    State(store): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut s = store.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, "GET /rest/people".into()) {
        return r;
    }
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit: usize = get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(60)
        .min(200);
    let mut people: Vec<Value> = s
        .people
        .iter()
        .filter(|p| p["deletedAt"].is_null())
        .cloned()
        .collect();
    if let Some(filter) = get("filter") {
        if let Some(rest) = filter.strip_prefix("updatedAt[gte]:") {
            let since = rest.trim_matches('"').to_owned();
            people.retain(|p| p["updatedAt"].as_str().unwrap_or("") >= since.as_str());
        } else if let Some(rest) = filter.strip_prefix("phones.primaryPhoneNumber[in]:") {
            let wanted: Vec<String> = serde_json::from_str(rest).unwrap_or_default();
            people.retain(|p| {
                p["phones"]["primaryPhoneNumber"]
                    .as_str()
                    .is_some_and(|n| wanted.iter().any(|w| w == n))
            });
        } else {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("unsupported filter {filter}")})),
            )
                .into_response();
        }
    }
    if get("order_by").is_some_and(|o| o.starts_with("updatedAt")) {
        people.sort_by(|a, b| {
            a["updatedAt"]
                .as_str()
                .unwrap_or("")
                .cmp(b["updatedAt"].as_str().unwrap_or(""))
        });
    }
    if let Some(after) = get("starting_after") {
        match people.iter().position(|p| p["id"] == after.as_str()) {
            Some(i) => people.drain(..=i).for_each(drop),
            None => people.clear(),
        };
    }
    let has_next = people.len() > limit;
    people.truncate(limit);
    let end = people.last().map(|p| p["id"].clone());
    Json(json!({
        "data": {"people": people},
        "totalCount": people.len(),
        "pageInfo": {"hasNextPage": has_next, "startCursor": null, "endCursor": end},
    }))
    .into_response()
}

async fn batch(
    State(store): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Response {
    let delay = {
        let mut s = store.lock().unwrap();
        s.writes_started += 1;
        s.write_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = store.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, "POST /rest/batch/people".into()) {
        return r;
    }
    if s.writes_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "writes down").into_response();
    }
    let upsert = q.iter().any(|(k, v)| k == "upsert" && v == "true");
    let Some(records) = body.as_array().filter(|a| !a.is_empty() && a.len() <= 60) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "body must be an array of 1 to 60 records"})),
        )
            .into_response();
    };
    s.batches.push(body.clone());
    let mut out = Vec::new();
    for r in records {
        let phone = r["phones"]["primaryPhoneNumber"]
            .as_str()
            .map(str::to_owned);
        let found = match r["id"].as_str() {
            Some(id) => s.people.iter().position(|p| p["id"] == id),
            None if upsert => phone.as_ref().and_then(|ph| {
                s.people.iter().position(|p| {
                    p["deletedAt"].is_null() && p["phones"]["primaryPhoneNumber"] == ph.as_str()
                })
            }),
            None => None,
        };
        let now = s.tick();
        let person = match found {
            Some(i) => {
                let mut p = s.people[i].clone();
                merge(&mut p, r);
                p["updatedAt"] = json!(now);
                s.people[i] = p.clone();
                p
            }
            None => {
                let mut p = json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "name": {"firstName": "", "lastName": ""},
                    "emails": {"primaryEmail": "", "additionalEmails": []},
                    "phones": {"primaryPhoneNumber": "", "primaryPhoneCountryCode": "", "primaryPhoneCallingCode": "", "additionalPhones": []},
                    "createdAt": now,
                    "deletedAt": null,
                });
                merge(&mut p, r);
                p["updatedAt"] = json!(now);
                s.people.push(p.clone());
                p
            }
        };
        out.push(person);
    }
    (
        StatusCode::CREATED,
        Json(json!({"data": {"createPeople": out}})),
    )
        .into_response()
}

async fn delete(
    State(store): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut s = store.lock().unwrap();
    if let Some(r) = gate(&mut s, &headers, format!("DELETE /rest/people/{id}")) {
        return r;
    }
    let now = s.tick();
    match s.people.iter_mut().find(|p| p["id"] == id.as_str()) {
        Some(p) => {
            p["deletedAt"] = json!(now);
            Json(json!({"data": {"deletePerson": {"id": id}}})).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "not found"}))).into_response(),
    }
}

impl FakeTwenty {
    pub async fn start() -> FakeTwenty {
        let store: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/rest/people", axum::routing::get(list))
            .route("/rest/batch/people", axum::routing::post(batch))
            .route("/rest/people/{id}", axum::routing::delete(delete))
            .with_state(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTwenty {
            url: format!("http://127.0.0.1:{}", addr.port()),
            store,
        }
    }

    /// Adds a person as a Twenty user would; returns it.
    pub fn add(&self, mut person: Value) -> Value {
        let mut s = self.store.lock().unwrap();
        let now = s.tick();
        if person["id"].is_null() {
            person["id"] = json!(uuid::Uuid::new_v4().to_string());
        }
        person["createdAt"] = json!(now);
        person["updatedAt"] = json!(now);
        person["deletedAt"] = Value::Null;
        s.people.push(person.clone());
        person
    }

    /// Changes a person as a Twenty user would (no webhook); returns it.
    pub fn edit(&self, id: &str, patch: Value) -> Value {
        let mut s = self.store.lock().unwrap();
        let now = s.tick();
        let p = s.people.iter_mut().find(|p| p["id"] == id).unwrap();
        merge(p, &patch);
        p["updatedAt"] = json!(now);
        p.clone()
    }

    /// Deletes a person as a Twenty user would; returns it as last seen.
    pub fn remove(&self, id: &str) -> Value {
        let mut s = self.store.lock().unwrap();
        let now = s.tick();
        let p = s.people.iter_mut().find(|p| p["id"] == id).unwrap();
        p["deletedAt"] = json!(now);
        p.clone()
    }

    pub fn person(&self, id: &str) -> Option<Value> {
        let s = self.store.lock().unwrap();
        s.people.iter().find(|p| p["id"] == id).cloned()
    }

    pub fn by_phone(&self, national: &str) -> Option<Value> {
        let s = self.store.lock().unwrap();
        s.people
            .iter()
            .find(|p| p["phones"]["primaryPhoneNumber"] == national)
            .cloned()
    }

    pub fn people(&self) -> Vec<Value> {
        self.store.lock().unwrap().people.clone()
    }

    pub fn throttle(&self, n: u32) {
        self.store.lock().unwrap().throttle = n;
    }

    pub fn down(&self, down: bool) {
        self.store.lock().unwrap().down = down;
    }

    pub fn writes_down(&self, down: bool) {
        self.store.lock().unwrap().writes_down = down;
    }

    pub fn write_delay(&self, d: std::time::Duration) {
        self.store.lock().unwrap().write_delay = d;
    }

    pub fn writes_started(&self) -> usize {
        self.store.lock().unwrap().writes_started
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }

    pub fn batches(&self) -> Vec<Value> {
        self.store.lock().unwrap().batches.clone()
    }
}

/// Twenty's signature: hex HMAC-SHA256 of `"{timestamp}:{body}"`, keyed with the secret.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}:{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The body Twenty posts for one event.
pub fn event(name: &str, record: &Value) -> Value {
    json!({
        "targetUrl": "ignored",
        "eventName": name,
        "objectMetadata": {"id": "om-1", "nameSingular": name.split('.').next().unwrap()},
        "workspaceId": "ws-1",
        "webhookId": "wh-1",
        "eventDate": Utc::now().to_rfc3339(),
        "record": record,
    })
}
