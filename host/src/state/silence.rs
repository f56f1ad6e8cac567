//! Silences: a person's acknowledgement of a known failure, set as the
//! `podlight.dev/silence` annotation on a Pod (or on a Node for maintenance). Pure.
//!
//! The annotation's value is JSON: `{"until": "2026-12-02T22:00:00Z", "reason": "known
//! broken CronJob", "by": "alice"}` — `until` (RFC 3339) is required, `reason` and `by`
//! are optional. `podlight silence` writes it; anyone with `patch` on the object may.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::policy::untrusted::sanitize;

/// The annotation a silence lives in.
pub const SILENCE_ANNOTATION: &str = "podlight.dev/silence";
/// The format, for messages that refuse a value.
pub const SILENCE_FORMAT: &str =
    r#"{"until": "<RFC 3339 time>", "reason": "<text>", "by": "<who>"}"#;
/// Longest annotation value read; a longer one is refused as malformed.
const MAX_ANNOTATION_BYTES: usize = 1024;
/// Longest reason kept, in characters.
pub const MAX_SILENCE_REASON: usize = 200;
/// Longest `by` kept, in characters.
const MAX_SILENCE_BY: usize = 100;

/// A silence: until when, why and who set it. Texts are bounded and have no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// When it ends, in milliseconds since the Unix epoch.
    pub until_ms: u64,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub by: String,
}

impl Silence {
    /// In force at `now_ms`.
    pub fn in_force(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }

    /// The annotation's value for this silence.
    pub fn to_annotation(&self) -> String {
        let until = i64::try_from(self.until_ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .map_or_else(|| self.until_ms.to_string(), |t| t.to_string());
        serde_json::json!({"until": until, "reason": self.reason, "by": self.by}).to_string()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceAnnotation {
    until: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: String,
}

/// Reads an annotation's value. The error says what is wrong (untrusted text is
/// bounded and stripped); the caller names the object and the format.
pub fn parse_silence(value: &str) -> Result<Silence, String> {
    if value.len() > MAX_ANNOTATION_BYTES {
        return Err(format!(
            "the value is {} bytes, more than {MAX_ANNOTATION_BYTES}",
            value.len()
        ));
    }
    let file: SilenceAnnotation =
        serde_json::from_str(value).map_err(|e| sanitize(&e.to_string(), 200))?;
    let until: Timestamp = file.until.trim().parse().map_err(|e| {
        format!(
            "until {:?} is not an RFC 3339 time ({})",
            sanitize(&file.until, 60),
            sanitize(&format!("{e}"), 120)
        )
    })?;
    let until_ms =
        u64::try_from(until.as_millisecond()).map_err(|_| "until is before 1970".to_string())?;
    Ok(Silence {
        until_ms,
        reason: sanitize(&file.reason, MAX_SILENCE_REASON),
        by: sanitize(&file.by, MAX_SILENCE_BY),
    })
}

/// What an object's annotations say about its silence: none, one, or a malformed
/// value (with what is wrong).
pub fn silence_from_annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Option<Result<Silence, String>> {
    annotations
        .into_iter()
        .find(|(key, _)| key.as_str() == SILENCE_ANNOTATION)
        .map(|(_, value)| parse_silence(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_format_and_writes_it_back() {
        let silence = parse_silence(
            r#"{"until": "2026-12-02T22:00:00Z", "reason": "known broken CronJob", "by": "alice"}"#,
        )
        .expect("valid");
        assert_eq!(silence.until_ms, 1_796_248_800_000);
        assert_eq!(silence.reason, "known broken CronJob");
        assert_eq!(silence.by, "alice");
        assert!(silence.in_force(silence.until_ms - 1));
        assert!(!silence.in_force(silence.until_ms));
        assert_eq!(parse_silence(&silence.to_annotation()), Ok(silence));
        let offset = parse_silence(r#"{"until": "2026-12-02T23:00:00+01:00"}"#).expect("offset");
        assert_eq!(offset.until_ms, 1_796_248_800_000);
        assert_eq!(offset.reason, "");
    }

    #[test]
    fn malformed_values_say_what_is_wrong() {
        for (value, says) in [
            ("2h", "expected"),
            (r#"{"reason": "x"}"#, "missing field `until`"),
            (r#"{"until": "tomorrow"}"#, "not an RFC 3339 time"),
            (
                r#"{"until": "2026-12-02T22:00:00Z", "colour": 1}"#,
                "unknown field",
            ),
        ] {
            let problem = parse_silence(value).expect_err(value);
            assert!(problem.contains(says), "{value}: {problem}");
        }
        assert!(parse_silence(&format!(r#"{{"until": "{}"}}"#, "x".repeat(2000))).is_err());
    }

    #[test]
    fn texts_are_bounded_and_stripped() {
        let value = serde_json::json!({
            "until": "2026-12-02T22:00:00Z",
            "reason": format!("\u{1b}[2J{}", "r".repeat(500)),
            "by": "eve\nforged: line",
        })
        .to_string();
        let silence = parse_silence(&value).expect("valid");
        assert!(!silence.reason.contains('\u{1b}'));
        assert!(silence.reason.chars().count() < MAX_SILENCE_REASON + 40);
        assert!(!silence.by.contains('\n'));
    }
}
