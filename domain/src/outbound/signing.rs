//! Standard Webhooks signing: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` signatures of
//! `"{id}.{timestamp}.{body}"`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::error::{DomainError, DomainResult};

const PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> DomainResult<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| DomainError::Internal(format!("randomness: {e}")))?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The key bytes of a `whsec_` secret (a secret without the prefix is read as base64 too).
fn key_of(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(PREFIX).unwrap_or(secret);
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// `v1,<signature>` of one message with one secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_of(secret)?);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// The `webhook-signature` header: one signature per secret, space-separated (during a
/// rotation the previous secret signs too, so receivers holding either verify).
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn matches_the_specification_example() {
        assert_eq!(
            sign(SECRET, ID, TS, BODY.as_bytes()).as_deref(),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let other = new_secret().expect("a secret");
        let header = signature_header(&[&other, SECRET], ID, TS, BODY.as_bytes());
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(parts[0].starts_with("v1,") && parts[0] != parts[1]);
    }

    #[test]
    fn new_secrets_are_random_and_decodable() {
        let a = new_secret().expect("a secret");
        let b = new_secret().expect("a secret");
        assert!(a.starts_with("whsec_") && a != b);
        assert_eq!(key_of(&a).map(|k| k.len()), Some(32));
        assert!(sign("whsec_!!!", ID, TS, b"x").is_none());
    }
}
