//! Post-call analysis by an LLM over an OpenAI-compatible chat-completions API (OpenAI,
//! Groq, vLLM, Ollama). `schema` builds the answer's JSON schema from the tenant's fields;
//! `request` the prompts and body; `ladder` steps down from `json_schema` to `json_object`
//! to plain text when a server refuses one; `client` sends a request within the request
//! budget and the concurrency cap (`limit`); `parse` validates the answer; `errors`
//! classifies failures so the analysis job knows whether to retry later (it does; this
//! module never sleeps on a 429 or a 5xx itself).

mod client;
mod errors;
mod ladder;
mod limit;
mod parse;
mod request;
mod retry;
mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use errors::{Envelope, LlmError, classify};
pub use ladder::{Adjust, Level, Param, adjustment};
pub use limit::{ConcurrencyLimit, Slot};
pub use retry::{go_duration, retry_after};
pub use schema::schema;

use client::{ChatClient, Reply};
use request::{Prompt, Repair};

use crate::analysis::Analysis;
use crate::analysis::fields::AnalysisField;
use crate::http::Budget;

/// A request budget of 0 means no cap; this stands for it.
const UNCAPPED_PER_MINUTE: u32 = 1_000_000;

/// More requests than this in one analysis means a bug in the loop below: each rung, each
/// left-out parameter and the repair happen at most once (1 + 2 + 3 + 1 = 7).
const MAX_REQUESTS: u32 = 8;

#[derive(Clone)]
pub struct LlmConfig {
    /// e.g. `http://127.0.0.1:11434` or `https://api.openai.com`; requests go to
    /// `{base_url}/v1/chat/completions` (a base ending in `/v1` is not given a second one).
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// Requests in flight at once for this deployment (across processes with Redis).
    pub concurrency: usize,
    /// Requests per minute for this account (across processes with Redis); 0 is no cap.
    pub requests_per_minute: u32,
    /// For one request, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// The answer's token cap (`max_tokens` and `max_completion_tokens`).
    pub max_tokens: u32,
}

// By hand, so the key never reaches a log line.
impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("concurrency", &self.concurrency)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("timeout", &self.timeout)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

impl LlmConfig {
    /// The request budget and concurrency cap this configuration asks for: shared across
    /// processes through `redis` when given, else this process's own. The Redis keys name
    /// the deployment by a digest, not by its URL or key.
    pub fn limits(
        &self,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> (Arc<Budget>, Arc<ConcurrencyLimit>) {
        let per_minute = match self.requests_per_minute {
            0 => UNCAPPED_PER_MINUTE,
            n => n,
        };
        let Some(conn) = redis else {
            return (
                Arc::new(Budget::per_minute(per_minute)),
                Arc::new(ConcurrencyLimit::local(self.concurrency)),
            );
        };
        let digest = |parts: &[&str]| {
            let mut d = Sha256::new();
            for p in parts {
                d.update(p.as_bytes());
                d.update([0]);
            }
            let id: [u8; 32] = d.finalize().into();
            hex::encode(&id[..16])
        };
        let base = self.base_url.trim().trim_end_matches('/');
        // Rate limits belong to the account (key) and model; the concurrency a server can
        // take belongs to the server.
        let account = digest(&[
            base,
            self.api_key.as_deref().unwrap_or(""),
            self.model.as_str(),
        ]);
        let server = digest(&[base]);
        (
            Arc::new(Budget::shared_per_minute(
                per_minute,
                conn.clone(),
                format!("switchboard:llm:budget:{account}"),
            )),
            Arc::new(ConcurrencyLimit::shared(
                self.concurrency,
                self.timeout,
                conn,
                format!("switchboard:llm:slots:{server}"),
            )),
        )
    }
}

/// One analysis, with what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnalysis {
    pub analysis: Analysis,
    /// Summed over every request the analysis made (0 where the server did not say).
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub requests: u32,
}

/// An analyzer for one endpoint and model. Share one per process: it remembers what the
/// server refused, so later calls start on the rung that works.
pub struct LlmAnalyzer {
    client: ChatClient,
    model: String,
    max_tokens: u32,
    /// Kept only to scrub it from server messages.
    api_key: Option<String>,
    /// The ladder rung (`Level as u8`) this endpoint and model are known to need.
    level: AtomicU8,
    /// `Param::bit`s of request parameters the server refused.
    omitted: AtomicU8,
}

impl LlmAnalyzer {
    pub fn new(
        config: LlmConfig,
        budget: Arc<Budget>,
        slots: Arc<ConcurrencyLimit>,
    ) -> Result<Self, LlmError> {
        let model = config.model.trim().to_owned();
        if model.is_empty() {
            return Err(LlmError::Config("the LLM model is not set".into()));
        }
        if config.max_tokens == 0 {
            return Err(LlmError::Config("max_tokens must be positive".into()));
        }
        let api_key = config
            .api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        let client = ChatClient::new(
            &config.base_url,
            api_key.clone(),
            config.timeout,
            budget,
            slots,
        )?;
        Ok(LlmAnalyzer {
            client,
            model,
            max_tokens: config.max_tokens,
            api_key,
            level: AtomicU8::new(Level::JsonSchema as u8),
            omitted: AtomicU8::new(0),
        })
    }

    /// The configured model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The rung the next analysis starts on.
    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Analyses one transcript. May send several requests (a step down the ladder, one
    /// repair of a malformed answer) but never waits out a 429 or a 5xx: it returns the
    /// classified error and the job retries later.
    pub async fn analyze(
        &self,
        transcript: &str,
        fields: &[AnalysisField],
    ) -> Result<LlmAnalysis, LlmError> {
        let schema = schema::schema(fields);
        let prompt = Prompt {
            model: &self.model,
            max_tokens: self.max_tokens,
            fields,
            schema: &schema,
            transcript,
        };
        let mut level = self.level();
        let mut omitted = self.omitted.load(Ordering::Relaxed);
        let mut repair: Option<Repair> = None;
        let (mut prompt_tokens, mut completion_tokens, mut requests) = (0i64, 0i64, 0u32);
        let model = self.model.as_str();
        // Errors carrying outside text lose the key and transcript quotes before leaving.
        let scrub = |e: LlmError| e.scrubbed(self.api_key.as_deref(), transcript);
        loop {
            if requests >= MAX_REQUESTS {
                return Err(LlmError::Malformed("too many attempts".into()));
            }
            let body = prompt.body(level, omitted, repair.as_ref());
            let started = Instant::now();
            let reply = self.client.send(&body).await;
            requests += 1;
            let latency_ms = started.elapsed().as_millis() as u64;
            let reply = match reply {
                Ok(r) => r,
                Err(error) => {
                    tracing::warn!(model, latency_ms, %error, "LLM request failed");
                    return Err(scrub(error));
                }
            };
            let completion = match reply {
                Reply::Completion(c) => c,
                Reply::Failed {
                    status,
                    headers,
                    body,
                } => {
                    let envelope = Envelope::parse(&body);
                    tracing::info!(
                        model,
                        status,
                        code = envelope.code.as_deref().unwrap_or(""),
                        latency_ms,
                        level = level.as_str(),
                        "LLM request refused"
                    );
                    if let Some(adjust) = adjustment(status, &body)
                        && let Some((next_level, next_omitted)) =
                            ladder::apply(adjust, level, omitted)
                    {
                        (level, omitted) = (next_level, next_omitted);
                        self.remember(level, omitted);
                        continue;
                    }
                    if envelope.is_failed_generation() {
                        // Groq checked the answer against the schema and it failed: the
                        // same as a malformed answer of ours.
                        let reason = "it does not match the schema".to_owned();
                        if repair.is_some() {
                            return Err(LlmError::Malformed(reason));
                        }
                        repair = Some(Repair {
                            answer: envelope.failed_generation.unwrap_or_default(),
                            reason,
                        });
                        continue;
                    }
                    return Err(scrub(classify(status, &headers, &body)));
                }
            };
            prompt_tokens += completion.prompt_tokens;
            completion_tokens += completion.completion_tokens;
            tracing::debug!(
                model,
                latency_ms,
                level = level.as_str(),
                prompt_tokens = completion.prompt_tokens,
                completion_tokens = completion.completion_tokens,
                finish_reason = completion.finish_reason.as_deref().unwrap_or(""),
                "LLM request answered"
            );
            if let Some(refusal) = completion.refusal {
                return Err(scrub(LlmError::Refused(refusal)));
            }
            match completion.finish_reason.as_deref() {
                Some("length") => return Err(LlmError::Truncated),
                Some("content_filter") => {
                    return Err(LlmError::Refused(
                        "the provider's content filter stopped the answer".into(),
                    ));
                }
                _ => {}
            }
            let content = completion.content.unwrap_or_default();
            let served_by = completion
                .model
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or(model);
            match parse::analysis(&content, fields, served_by) {
                Ok(analysis) => {
                    return Ok(LlmAnalysis {
                        analysis,
                        prompt_tokens,
                        completion_tokens,
                        requests,
                    });
                }
                Err(reason) if repair.is_none() => {
                    tracing::info!(model, %reason, "LLM answer malformed; asking once for a repair");
                    repair = Some(Repair {
                        answer: content,
                        reason,
                    });
                }
                Err(reason) => return Err(LlmError::Malformed(reason)),
            }
        }
    }

    /// Keeps a step down (or a left-out parameter) for later calls. Monotonic, so calls
    /// running at once cannot undo each other's findings.
    fn remember(&self, level: Level, omitted: u8) {
        let before = self.level.fetch_max(level as u8, Ordering::Relaxed);
        let omitted_before = self.omitted.fetch_or(omitted, Ordering::Relaxed);
        if before < level as u8 || (omitted_before | omitted) != omitted_before {
            tracing::info!(
                model = self.model.as_str(),
                level = level.as_str(),
                omitted,
                "the LLM server refused part of the request; adjusted for later calls"
            );
        }
    }
}
