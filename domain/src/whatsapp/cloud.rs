//! Meta's Graph API as the WhatsApp channel uses it: sending a message (once: a send is
//! never repeated unless Meta confirmed it took nothing), listing templates (paged), and
//! the error envelope `{"error": {"message", "type", "code", "error_data": {"details"},
//! "fbtrace_id"}}`, whose `code` decides what happens.

use serde::Deserialize;
use serde_json::{Value, json};

use super::WhatsApp;
use crate::http::{Auth, HttpError, path_segment};

/// The start of an answer read (success bodies and error envelopes are small).
const ANSWER_BYTES: usize = 64 * 1024;

/// Meta's refusal, by its code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// 0, 190 and the permission codes: the token is expired, revoked or lacks access.
    #[error("Meta refused the access token (code {code}): {message}")]
    Auth { code: i64, message: String },
    /// 4, 80007, 130429, 131048, 131056: throughput limits; try again later.
    #[error("Meta is rate limiting (code {code}): {message}")]
    RateLimited { code: i64, message: String },
    /// 131047: more than 24 hours since the customer last wrote.
    #[error("outside the 24-hour window (code 131047): {message}")]
    WindowClosed { message: String },
    /// Anything else Meta refused (131026 undeliverable, 132000/132001 template errors...).
    #[error("Meta refused the message (code {code}): {message}")]
    Refused { code: i64, message: String },
    /// No answer, or not one we can read; the message may or may not have been taken.
    #[error("Meta could not be reached: {0}")]
    Unavailable(String),
}

impl MetaError {
    /// From an envelope's code, title and details.
    pub fn from_code(code: i64, message: String) -> MetaError {
        match code {
            0 | 3 | 10 | 190 | 200..=299 => MetaError::Auth { code, message },
            4 | 80007 | 130429 | 131048 | 131056 => MetaError::RateLimited { code, message },
            131047 => MetaError::WindowClosed { message },
            _ => MetaError::Refused { code, message },
        }
    }

    fn from_envelope(status: u16, body: &str) -> MetaError {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let e = &v["error"];
        let Some(code) = e["code"].as_i64() else {
            return if status == 429 {
                MetaError::RateLimited {
                    code: 4,
                    message: "HTTP 429".into(),
                }
            } else if status == 401 || status == 403 {
                MetaError::Auth {
                    code: 190,
                    message: format!("HTTP {status}"),
                }
            } else if status >= 500 {
                MetaError::Unavailable(format!("HTTP {status}"))
            } else {
                MetaError::Refused {
                    code: i64::from(status),
                    message: format!("HTTP {status}"),
                }
            };
        };
        let mut message = e["message"].as_str().unwrap_or("").to_owned();
        if let Some(details) = e["error_data"]["details"].as_str() {
            message = format!("{message}: {details}");
        }
        MetaError::from_code(code, printable(&message, 500))
    }
}

/// At most `max` characters of `s`, control characters dropped.
pub(crate) fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Sends `message` (the part after `messaging_product`/`to`) to `to` (digits); Meta's
/// message id.
pub(crate) async fn send(
    wa: &WhatsApp,
    phone_number_id: &str,
    token: &str,
    to: &str,
    mut message: Value,
) -> Result<String, MetaError> {
    let id = path_segment(phone_number_id).map_err(|e| MetaError::Refused {
        code: 100,
        message: e.to_string(),
    })?;
    message["messaging_product"] = json!("whatsapp");
    message["recipient_type"] = json!("individual");
    message["to"] = json!(to);
    let url = format!("{}/{id}/messages", wa.base_url());
    let answer = wa
        .http()
        .post_once(
            &url,
            &[("authorization", format!("Bearer {token}"))],
            message.to_string(),
            ANSWER_BYTES,
        )
        .await
        .map_err(MetaError::Unavailable)?;
    if !(200..300).contains(&answer.status) {
        return Err(MetaError::from_envelope(answer.status, &answer.excerpt));
    }
    let v: Value = serde_json::from_str(&answer.excerpt)
        .map_err(|e| MetaError::Unavailable(format!("unreadable answer: {e}")))?;
    v["messages"][0]["id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .map(str::to_owned)
        .ok_or_else(|| MetaError::Unavailable("the answer named no message id".into()))
}

/// One template as Meta lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TemplateDto {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub components: Option<Value>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<TemplateDto>,
    #[serde(default)]
    paging: Option<Value>,
}

/// Most pages a sync reads (100 templates each).
const MAX_PAGES: usize = 50;

/// Every template of the business account, page by page.
pub(crate) async fn list_templates(
    wa: &WhatsApp,
    business_account_id: &str,
    token: &str,
) -> Result<Vec<TemplateDto>, MetaError> {
    let id = path_segment(business_account_id).map_err(|e| MetaError::Refused {
        code: 100,
        message: e.to_string(),
    })?;
    let url = format!("{}/{id}/message_templates", wa.base_url());
    let auth = Auth::Bearer(token.to_owned());
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![
            (
                "fields",
                "name,status,category,language,components,rejected_reason".to_owned(),
            ),
            ("limit", "100".to_owned()),
        ];
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let page: TemplatePage = wa
            .http()
            .get_json(&url, &query, &auth)
            .await
            .map_err(from_http)?;
        let n = page.data.len();
        out.extend(page.data);
        after = page
            .paging
            .as_ref()
            .filter(|p| p["next"].is_string())
            .and_then(|p| p["cursors"]["after"].as_str())
            .map(str::to_owned);
        if after.is_none() || n == 0 {
            break;
        }
    }
    Ok(out)
}

fn from_http(e: HttpError) -> MetaError {
    match e {
        HttpError::Credentials { status, message } => MetaError::Auth {
            code: 190,
            message: format!("HTTP {status}: {}", printable(&message, 300)),
        },
        HttpError::RateLimited { .. } => MetaError::RateLimited {
            code: 4,
            message: "HTTP 429".into(),
        },
        HttpError::Rejected { status, message } => MetaError::Refused {
            code: i64::from(status),
            message: printable(&message, 300),
        },
        HttpError::NotFound => MetaError::Refused {
            code: 100,
            message: "no such business account".into(),
        },
        other => MetaError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_map_by_code() {
        let body = r#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"fbtrace_id":"Az8or2"}}"#;
        assert!(matches!(
            MetaError::from_envelope(400, body),
            MetaError::RateLimited { code: 130429, .. }
        ));
        let expired = r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#;
        assert!(matches!(
            MetaError::from_envelope(401, expired),
            MetaError::Auth { code: 190, .. }
        ));
        let window = r#"{"error":{"message":"Re-engagement message","code":131047}}"#;
        assert!(matches!(
            MetaError::from_envelope(400, window),
            MetaError::WindowClosed { .. }
        ));
        assert!(matches!(
            MetaError::from_envelope(503, "<html>"),
            MetaError::Unavailable(_)
        ));
        assert!(matches!(
            MetaError::from_envelope(400, "not json"),
            MetaError::Refused { code: 400, .. }
        ));
    }
}
