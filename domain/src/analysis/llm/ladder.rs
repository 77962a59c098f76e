//! The capability ladder. Servers differ in what they accept: OpenAI enforces `json_schema`
//! on some models only, Groq refuses it on most, older servers know only `json_object`, and
//! OpenAI's reasoning models refuse `max_tokens` and `temperature: 0`. Each refusal is a
//! 400 naming what it refuses; we step down (or leave the parameter out), retry at once and
//! remember it for later calls.

use super::errors::Envelope;

/// How the answer's shape is asked for, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `response_format: json_schema` with `strict: true`.
    JsonSchema = 0,
    /// `response_format: json_object` (the prompt must say "JSON").
    JsonObject = 1,
    /// No `response_format`: the prompt asks for JSON only and the answer is dug out of
    /// whatever prose comes with it.
    Text = 2,
}

impl Level {
    pub fn next(self) -> Option<Level> {
        match self {
            Level::JsonSchema => Some(Level::JsonObject),
            Level::JsonObject => Some(Level::Text),
            Level::Text => None,
        }
    }

    pub fn from_u8(n: u8) -> Level {
        match n {
            0 => Level::JsonSchema,
            1 => Level::JsonObject,
            _ => Level::Text,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::JsonSchema => "json_schema",
            Level::JsonObject => "json_object",
            Level::Text => "text",
        }
    }
}

/// A request parameter a server may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    MaxTokens,
    MaxCompletionTokens,
    Temperature,
}

impl Param {
    pub fn name(self) -> &'static str {
        match self {
            Param::MaxTokens => "max_tokens",
            Param::MaxCompletionTokens => "max_completion_tokens",
            Param::Temperature => "temperature",
        }
    }

    /// Its bit in a set of left-out parameters.
    pub fn bit(self) -> u8 {
        match self {
            Param::MaxTokens => 1,
            Param::MaxCompletionTokens => 2,
            Param::Temperature => 4,
        }
    }
}

/// What to change before trying again at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// The server refused the `response_format`: one rung down.
    Downgrade,
    /// The server refused a parameter: leave it out.
    Omit(Param),
}

/// Words that put a refusal on the response format.
const FORMAT_WORDS: &[&str] = &[
    "response_format",
    "response format",
    "json_schema",
    "json_object",
    "structured output",
];

/// Words of "you asked for something this server or model cannot do".
const UNSUPPORTED: &[&str] = &[
    "not supported",
    "does not support",
    "unsupported",
    "not available for this model",
];

const PARAMS: [Param; 3] = [
    Param::MaxCompletionTokens,
    Param::MaxTokens,
    Param::Temperature,
];

/// Whether a failed response (`status`, `body`) is a refusal of something the ladder can
/// change, and what to change. `None` for everything else, which is then classified as an
/// error. Whether the change is still possible (a rung left) is the caller's to check.
pub fn adjustment(status: u16, body: &[u8]) -> Option<Adjust> {
    if status != 400 && status != 422 {
        return None;
    }
    let envelope = Envelope::parse(body);
    // Groq's schema validation failure is about the model's output, not the request.
    if envelope.is_failed_generation() {
        return None;
    }
    let lower = |v: &Option<String>| v.as_deref().unwrap_or_default().to_lowercase();
    let (message, param, code) = (
        lower(&envelope.message),
        lower(&envelope.param),
        lower(&envelope.code),
    );
    let all = format!("{message} {param} {code}");
    if param.starts_with("response_format") || FORMAT_WORDS.iter().any(|w| all.contains(w)) {
        return Some(Adjust::Downgrade);
    }
    if !UNSUPPORTED.iter().any(|w| all.contains(w)) {
        return None;
    }
    if let Some(p) = PARAMS.into_iter().find(|p| param == p.name()) {
        return Some(Adjust::Omit(p));
    }
    if param.is_empty() {
        // "max_completion_tokens" does not contain "max_tokens", so the order is safe.
        if let Some(p) = PARAMS.into_iter().find(|p| message.contains(p.name())) {
            return Some(Adjust::Omit(p));
        }
        // An unnamed "not supported": the response format is the one unusual thing we send.
        return Some(Adjust::Downgrade);
    }
    None
}

/// The rung and left-out parameters after `adjust`, or `None` when it cannot be applied
/// (no rung left, the parameter already left out): the failure is then final.
pub fn apply(adjust: Adjust, level: Level, omitted: u8) -> Option<(Level, u8)> {
    match adjust {
        Adjust::Downgrade => level.next().map(|next| (next, omitted)),
        Adjust::Omit(p) if omitted & p.bit() == 0 => Some((level, omitted | p.bit())),
        Adjust::Omit(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adjust(status: u16, body: &str) -> Option<Adjust> {
        adjustment(status, body.as_bytes())
    }

    #[test]
    fn refused_response_formats_step_down() {
        // OpenAI, a model without structured outputs.
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.","type":"invalid_request_error","param":null,"code":null}}"#
            ),
            Some(Adjust::Downgrade)
        );
        // Groq.
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"This model does not support response format `json_schema`","type":"invalid_request_error"}}"#
            ),
            Some(Adjust::Downgrade)
        );
        // A strict-schema complaint, named only by `param`.
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"Invalid schema: 'required' is required to be supplied.","param":"response_format","code":"invalid_value"}}"#
            ),
            Some(Adjust::Downgrade)
        );
        // An unnamed "not supported", older vLLM's envelope.
        assert_eq!(
            adjust(
                400,
                r#"{"object":"error","message":"Feature Not Supported","type":"BadRequestError","param":null,"code":400}"#
            ),
            Some(Adjust::Downgrade)
        );
    }

    #[test]
    fn refused_parameters_are_left_out() {
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#
            ),
            Some(Adjust::Omit(Param::MaxTokens))
        );
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported.","type":"invalid_request_error","param":"temperature","code":"unsupported_value"}}"#
            ),
            Some(Adjust::Omit(Param::Temperature))
        );
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"max_completion_tokens is not supported"}}"#
            ),
            Some(Adjust::Omit(Param::MaxCompletionTokens))
        );
    }

    #[test]
    fn other_failures_are_not_adjusted() {
        // Wrong key, unknown model, throttling, server errors.
        assert_eq!(
            adjust(
                401,
                r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#
            ),
            None
        );
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"The model `gpt-9` does not exist","code":"model_not_found"}}"#
            ),
            None
        );
        assert_eq!(
            adjust(429, r#"{"error":{"message":"response_format"}}"#),
            None
        );
        assert_eq!(
            adjust(500, r#"{"error":{"message":"not supported"}}"#),
            None
        );
        // A parameter we do not send being "unsupported" is not ours to fix.
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"'logprobs' is not supported","param":"logprobs"}}"#
            ),
            None
        );
        // Groq's failed validation goes to the repair path instead.
        assert_eq!(
            adjust(
                400,
                r#"{"error":{"message":"Failed to validate JSON against the response_format schema","code":"json_validate_failed","failed_generation":"{"}}"#
            ),
            None
        );
    }

    #[test]
    fn adjustments_apply_once() {
        assert_eq!(
            apply(Adjust::Downgrade, Level::JsonSchema, 0),
            Some((Level::JsonObject, 0))
        );
        assert_eq!(apply(Adjust::Downgrade, Level::Text, 0), None);
        let t = Param::Temperature.bit();
        assert_eq!(
            apply(Adjust::Omit(Param::Temperature), Level::JsonObject, 0),
            Some((Level::JsonObject, t))
        );
        assert_eq!(
            apply(Adjust::Omit(Param::Temperature), Level::JsonObject, t),
            None
        );
    }

    #[test]
    fn levels_step_down_in_order() {
        assert_eq!(Level::JsonSchema.next(), Some(Level::JsonObject));
        assert_eq!(Level::JsonObject.next(), Some(Level::Text));
        assert_eq!(Level::Text.next(), None);
        for l in [Level::JsonSchema, Level::JsonObject, Level::Text] {
            assert_eq!(Level::from_u8(l as u8), l);
        }
    }
}
