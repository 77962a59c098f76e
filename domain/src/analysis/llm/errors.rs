//! What can go wrong with an analysis over an LLM, classified from the HTTP status and the
//! error envelope (by `code`/`type`, not by message) so the analysis job knows whether to
//! try again later. Messages shown to users are short and never carry the API key or the
//! transcript.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::retry::retry_after;

/// Longest message kept from a server or a model.
pub const MAX_MESSAGE: usize = 300;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The account is out of credit: retrying cannot help until someone pays.
    #[error("the LLM account has no quota left: {message}")]
    Quota { message: String },
    #[error("the LLM is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the LLM server failed (HTTP {status})")]
    Server {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("the LLM did not answer in time")]
    Timeout,
    #[error("could not reach the LLM: {0}")]
    Transport(String),
    /// Any other 4xx: the key, the model name or the request is wrong.
    #[error("the LLM rejected the request (HTTP {status}{}): {message}", code_note(.code))]
    Rejected {
        status: u16,
        code: Option<String>,
        message: String,
    },
    #[error("the model refused to analyse the call: {0}")]
    Refused(String),
    /// The answer hit the token limit, so its JSON is cut short.
    #[error("the model's answer was cut off at the token limit")]
    Truncated,
    #[error("the model's answer is not a valid analysis: {0}")]
    Malformed(String),
    #[error("the LLM is misconfigured: {0}")]
    Config(String),
}

fn code_note(code: &Option<String>) -> String {
    code.as_deref()
        .map(|c| format!(", {c}"))
        .unwrap_or_default()
}

impl LlmError {
    /// Whether trying the same analysis later may succeed. Malformed, truncated or refused
    /// answers are not retried: at temperature 0 the same transcript gives the same answer.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. }
                | LlmError::Server { .. }
                | LlmError::Timeout
                | LlmError::Transport(_)
        )
    }

    /// The pause the server asked for, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } | LlmError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The same error with any text that came from outside (server messages, refusals)
    /// cleared of the key and of quotes from the transcript.
    pub(crate) fn scrubbed(self, secret: Option<&str>, transcript: &str) -> Self {
        let clean = |m: String| scrub(&m, secret, transcript);
        match self {
            LlmError::Quota { message } => LlmError::Quota {
                message: clean(message),
            },
            LlmError::Rejected {
                status,
                code,
                message,
            } => LlmError::Rejected {
                status,
                code: code.map(clean),
                message: clean(message),
            },
            LlmError::Refused(m) => LlmError::Refused(clean(m)),
            LlmError::Transport(m) => LlmError::Transport(clean(m)),
            other => other,
        }
    }
}

/// The parts of an error body we read. OpenAI and most servers send
/// `{"error":{"message","type","param","code"}}`; older vLLM sends the same keys at the top
/// level with an integer `code`; FastAPI-style servers send `{"detail": ...}`; some send
/// plain text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Envelope {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub param: Option<String>,
    pub code: Option<String>,
    /// Groq's raw output when its schema validation failed (`json_validate_failed`).
    pub failed_generation: Option<String>,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Envelope {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body);
            return Envelope {
                message: non_empty(text.trim()),
                ..Envelope::default()
            };
        };
        let inner = match json.get("error") {
            Some(e) if e.is_object() => e,
            Some(Value::String(s)) => {
                return Envelope {
                    message: non_empty(s),
                    code: text_of(json.get("code")),
                    ..Envelope::default()
                };
            }
            _ => &json,
        };
        Envelope {
            message: text_of(inner.get("message")).or_else(|| text_of(json.get("detail"))),
            kind: text_of(inner.get("type")),
            param: text_of(inner.get("param")),
            code: text_of(inner.get("code")),
            failed_generation: text_of(inner.get("failed_generation")),
        }
    }

    fn code_or_type_is(&self, wanted: &[&str]) -> bool {
        [&self.code, &self.kind]
            .into_iter()
            .flatten()
            .any(|v| wanted.iter().any(|w| v.eq_ignore_ascii_case(w)))
    }

    /// Out of credit (`insufficient_quota`, or the newer `credit_balance_exhausted`).
    pub fn is_quota(&self) -> bool {
        self.code_or_type_is(&["insufficient_quota", "credit_balance_exhausted"])
    }

    /// Groq's 400 when the model's output failed the schema: a bad answer, not a bad request.
    pub fn is_failed_generation(&self) -> bool {
        self.code_or_type_is(&["json_validate_failed"])
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A string, a number (vLLM's integer `code`) or, for anything else (a FastAPI `detail`
/// list), its JSON text.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => non_empty(s),
        other => Some(other.to_string()),
    }
}

/// The error an unsuccessful response (`status` not 2xx) stands for.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let envelope = Envelope::parse(body);
    let message = || cap(envelope.message.as_deref().unwrap_or("no error message"));
    match status {
        // 402 is how some gateways (OpenRouter) say the credit ran out.
        402 => LlmError::Quota { message: message() },
        429 if envelope.is_quota() => LlmError::Quota { message: message() },
        429 => LlmError::RateLimited {
            retry_after: retry_after(headers),
        },
        408 => LlmError::Timeout,
        500..=599 => LlmError::Server {
            status,
            retry_after: retry_after(headers),
        },
        _ => LlmError::Rejected {
            status,
            code: envelope.code.as_deref().map(cap),
            message: message(),
        },
    }
}

/// A short, printable excerpt.
pub fn cap(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// Shown instead of a message that quoted the request.
const WITHHELD: &str = "(message withheld: it quoted the transcript)";

/// Some servers echo parts of the request in their errors (validation errors with the
/// offending input) and OpenAI names a masked key: drop the key and anything that looks
/// like it, and withhold a message that quotes the transcript.
pub fn scrub(message: &str, secret: Option<&str>, transcript: &str) -> String {
    let mut text = cap(message);
    if let Some(key) = secret.map(str::trim).filter(|k| !k.is_empty()) {
        text = text.replace(key, "[redacted]");
        // "Incorrect API key provided: sk-abc1***xyz": a word starting like the key.
        if key.chars().count() >= 12 {
            let head: String = key.chars().take(6).collect();
            text = text
                .split(' ')
                .map(|w| {
                    let bare = w.trim_matches(|c: char| !c.is_alphanumeric());
                    if bare.starts_with(&head) || (bare.len() >= 8 && w.contains("***")) {
                        "[redacted]"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    if quotes(&text, transcript) {
        return WITHHELD.to_owned();
    }
    text
}

/// Whether `text` holds a run of `WINDOW` characters (with some substance: at least half
/// letters or digits) that also occurs in the transcript.
fn quotes(text: &str, transcript: &str) -> bool {
    const WINDOW: usize = 24;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < WINDOW || transcript.len() < WINDOW {
        return false;
    }
    chars.windows(WINDOW).any(|w| {
        w.iter().filter(|c| c.is_alphanumeric()).count() >= WINDOW / 2
            && transcript.contains(&w.iter().collect::<String>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_json(status: u16, body: &str) -> LlmError {
        classify(status, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn quota_is_told_apart_from_throttling() {
        let quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(matches!(classify_json(429, quota), LlmError::Quota { .. }));
        let credits = r#"{"error":{"message":"You have no credits remaining","type":"invalid_request_error","param":null,"code":"credit_balance_exhausted"}}"#;
        let e = classify_json(429, credits);
        assert!(matches!(e, LlmError::Quota { .. }));
        assert!(!e.is_retryable());
        let throttled = r#"{"error":{"message":"Rate limit reached for o4-mini on tokens per min (TPM). Please try again in 1.574s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset-tokens", "1.574s".parse().unwrap());
        let e = classify(429, &headers, throttled.as_bytes());
        assert_eq!(
            e,
            LlmError::RateLimited {
                retry_after: Some(Duration::from_millis(1574))
            }
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1574)));
    }

    #[test]
    fn server_errors_are_retryable_and_honour_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        let vllm =
            r#"{"error":{"message":"","type":"InternalServerError","param":null,"code":500}}"#;
        let e = classify(503, &headers, vllm.as_bytes());
        assert_eq!(
            e,
            LlmError::Server {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(e.is_retryable());
        assert!(classify_json(502, "<html>bad gateway</html>").is_retryable());
        assert_eq!(classify_json(408, ""), LlmError::Timeout);
    }

    #[test]
    fn other_client_errors_are_rejections() {
        let e = classify_json(
            401,
            r#"{"error":{"message":"Invalid API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        assert_eq!(
            e,
            LlmError::Rejected {
                status: 401,
                code: Some("invalid_api_key".into()),
                message: "Invalid API key".into()
            }
        );
        assert!(!e.is_retryable());
        assert_eq!(e.retry_after(), None);
        // Older vLLM: the envelope at the top level, an integer code.
        let e = classify_json(
            400,
            r#"{"object":"error","message":"bad request","type":"BadRequestError","param":null,"code":400}"#,
        );
        assert_eq!(
            e,
            LlmError::Rejected {
                status: 400,
                code: Some("400".into()),
                message: "bad request".into()
            }
        );
        // Ollama's missing model; then plain text and an empty body.
        let e = classify_json(
            404,
            r#"{"error":{"message":"model \"llama9\" not found","type":"not_found_error","param":null,"code":null}}"#,
        );
        assert!(matches!(
            e,
            LlmError::Rejected {
                status: 404,
                code: None,
                ..
            }
        ));
        assert!(
            matches!(classify_json(400, "nope"), LlmError::Rejected { message, .. } if message == "nope")
        );
        assert!(matches!(
            classify_json(400, ""),
            LlmError::Rejected { message, .. } if message == "no error message"
        ));
        assert!(matches!(
            classify_json(
                402,
                r#"{"error":{"message":"Insufficient credits","code":402}}"#
            ),
            LlmError::Quota { .. }
        ));
    }

    #[test]
    fn messages_are_capped() {
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(5000));
        let LlmError::Rejected { message, .. } = classify_json(400, &long) else {
            panic!("expected a rejection");
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE + 1);
        assert!(!message.contains('\n'));
    }

    #[test]
    fn groq_schema_failures_are_recognised() {
        let body = r#"{"error":{"message":"Failed to validate JSON.","type":"invalid_request_error","code":"json_validate_failed","failed_generation":"{\"summary\": 1"}}"#;
        let e = Envelope::parse(body.as_bytes());
        assert!(e.is_failed_generation());
        assert_eq!(e.failed_generation.as_deref(), Some("{\"summary\": 1"));
    }

    #[test]
    fn scrubbing_removes_keys_and_transcript_quotes() {
        let key = "sk-proj-abcdef1234567890";
        assert_eq!(
            scrub(
                "Incorrect API key provided: sk-proj-****7890.",
                Some(key),
                ""
            ),
            "Incorrect API key provided: [redacted]"
        );
        assert_eq!(
            scrub(&format!("bad key {key}!"), Some(key), ""),
            "bad key [redacted]!"
        );
        let transcript =
            "user: my budget is eighty lakh and I want a villa near the lake\nassistant: great";
        assert_eq!(
            scrub(
                "invalid input: 'my budget is eighty lakh and I want a villa'",
                None,
                transcript
            ),
            WITHHELD
        );
        assert_eq!(
            scrub("model not found", None, transcript),
            "model not found"
        );
    }

    #[test]
    fn display_names_the_code() {
        let e = LlmError::Rejected {
            status: 400,
            code: Some("invalid_value".into()),
            message: "bad".into(),
        };
        assert_eq!(
            e.to_string(),
            "the LLM rejected the request (HTTP 400, invalid_value): bad"
        );
    }
}
