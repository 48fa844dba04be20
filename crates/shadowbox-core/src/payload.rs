//! The MQTT payloads of the contract.
//!
//! - desired (retained, QoS 1): `{"desired": {...}, "version": 7, "timestamp": "2026-11-27T04:00:00.000Z"}`
//! - clear (retained, QoS 1): an empty payload
//! - reported (from the device): `{"reported": {...}, "version": 7}`, and
//!   optionally `"rejected": {"version": 9, "reason": "..."}` (the device
//!   refuses desired version 9; `reported` may then be left out)

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{Document, DocumentError, DocumentLimits, into_document, type_name};

#[derive(Serialize)]
struct DesiredOut<'a> {
    desired: &'a Document,
    version: i64,
    timestamp: String,
}

/// Encodes the retained desired payload for `version` of `desired`.
pub fn encode_desired(desired: &Document, version: i64, at: DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&DesiredOut {
        desired,
        version,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .expect("a JSON map always serializes")
}

/// A desired payload as a device reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DesiredMessage {
    /// The whole desired document.
    pub desired: Document,
    /// Its version; a device ignores a version lower than one it applied.
    pub version: i64,
    /// When shadowbox published it.
    pub timestamp: DateTime<Utc>,
}

/// Decodes a retained desired payload; `Ok(None)` is a clear (empty payload).
pub fn decode_desired(payload: &[u8]) -> Result<Option<DesiredMessage>, serde_json::Error> {
    if payload.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(payload).map(Some)
}

/// The longest rejection reason a device may send, in characters.
pub const MAX_REJECTION_REASON_CHARS: usize = 256;

/// A reported-state message from a device, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedMessage {
    /// The device's whole reported state; `None` when the message carries
    /// only a rejection.
    pub reported: Option<Document>,
    /// The desired version the device has applied.
    pub version: i64,
    /// The desired version the device refuses, and why.
    pub rejected: Option<Rejection>,
}

/// A device's refusal of a desired version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The desired version refused.
    pub version: i64,
    /// Why, in the device's words (at most [`MAX_REJECTION_REASON_CHARS`]).
    pub reason: String,
}

/// Why a reported payload was refused; [`ReportedError::reason`] names it
/// for metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportedError {
    /// The payload is larger than the document limit allows.
    #[error("payload is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The payload is not JSON.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// The payload is JSON but not an object.
    #[error("payload must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Neither `reported` nor `rejected` is there.
    #[error("payload has no \"reported\" field (nor a \"rejected\" one)")]
    MissingReported,
    /// `reported` is not an object, or breaks the document limits.
    #[error("\"reported\" is invalid: {0}")]
    Document(DocumentError),
    /// `version` is not a non-negative integer.
    #[error("\"version\" must be a non-negative integer, got {0}")]
    BadVersion(String),
    /// `rejected` is not `{"version": N, "reason": "..."}` with a
    /// non-negative integer version and a reason of at most
    /// [`MAX_REJECTION_REASON_CHARS`] characters.
    #[error("\"rejected\" is invalid: {0}")]
    BadRejection(String),
}

impl ReportedError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject(_) | Self::MissingReported => "invalid_shape",
            Self::Document(DocumentError::NotAnObject(_)) => "reported_not_object",
            Self::Document(_) => "document_limits",
            Self::BadVersion(_) => "bad_version",
            Self::BadRejection(_) => "bad_rejection",
        }
    }
}

/// Decodes and validates a reported payload against `limits`.
pub fn decode_reported(
    payload: &[u8],
    limits: &DocumentLimits,
) -> Result<ReportedMessage, ReportedError> {
    // The envelope adds a few bytes around the document, and a rejection
    // its reason (each character at most a 6-byte JSON escape); a payload
    // far past the limit is refused before it is parsed.
    let envelope_allowance = 256 + 6 * MAX_REJECTION_REASON_CHARS;
    if payload.len() > limits.max_bytes + envelope_allowance {
        return Err(ReportedError::TooLarge {
            size: payload.len(),
            limit: limits.max_bytes,
        });
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| ReportedError::InvalidJson(e.to_string()))?;
    let Value::Object(mut envelope) = value else {
        return Err(ReportedError::NotAnObject(type_name(&value)));
    };
    let version = match envelope.remove("version") {
        None | Some(Value::Null) => 0,
        Some(value) => non_negative_integer(&value)
            .ok_or_else(|| ReportedError::BadVersion(describe(&value)))?,
    };
    let rejected = match envelope.remove("rejected") {
        None | Some(Value::Null) => None,
        Some(value) => Some(decode_rejection(value)?),
    };
    let reported = match envelope.remove("reported") {
        None if rejected.is_some() => None,
        None => return Err(ReportedError::MissingReported),
        Some(reported) => {
            let reported = into_document(reported).map_err(ReportedError::Document)?;
            limits.check(&reported).map_err(ReportedError::Document)?;
            Some(reported)
        }
    };
    Ok(ReportedMessage {
        reported,
        version,
        rejected,
    })
}

/// `{"version": N, "reason": "..."}`; other keys are ignored, as in the
/// envelope.
fn decode_rejection(value: Value) -> Result<Rejection, ReportedError> {
    let bad = |what: String| Err(ReportedError::BadRejection(what));
    let Value::Object(mut rejection) = value else {
        return bad(format!("must be an object, got {}", type_name(&value)));
    };
    let version = match rejection.remove("version") {
        None => return bad("no \"version\"".to_owned()),
        Some(value) => match non_negative_integer(&value) {
            Some(version) => version,
            None => {
                return bad(format!(
                    "\"version\" must be a non-negative integer, got {}",
                    describe(&value)
                ));
            }
        },
    };
    let reason = match rejection.remove("reason") {
        Some(Value::String(reason)) => reason,
        Some(other) => {
            return bad(format!(
                "\"reason\" must be a string, got {}",
                type_name(&other)
            ));
        }
        None => return bad("no \"reason\"".to_owned()),
    };
    let chars = reason.chars().count();
    if chars > MAX_REJECTION_REASON_CHARS {
        return bad(format!(
            "\"reason\" is {chars} characters, more than {MAX_REJECTION_REASON_CHARS}"
        ));
    }
    if reason.contains('\0') {
        // PostgreSQL text cannot hold it.
        return bad("\"reason\" contains a NUL character".to_owned());
    }
    Ok(Rejection { version, reason })
}

/// A JSON integer `>= 0` that fits an `i64`.
fn non_negative_integer(value: &Value) -> Option<i64> {
    value.as_i64().filter(|v| *v >= 0)
}

/// A refused version, for the error: the number itself, or its type.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn desired_payload_matches_the_contract() {
        let desired = into_document(json!({"rate": 5})).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-27T04:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let bytes = encode_desired(&desired, 7, at);
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"desired":{"rate":5},"version":7,"timestamp":"2026-11-27T04:00:00.000Z"}"#
        );
        let decoded = decode_desired(&bytes).unwrap().unwrap();
        assert_eq!((decoded.version, decoded.desired), (7, desired));
        assert_eq!(decode_desired(b"").unwrap(), None);
    }

    #[test]
    fn reported_payload_decodes_with_default_version() {
        let limits = DocumentLimits::default();
        let msg = decode_reported(br#"{"reported": {"rate": 4}, "version": 2}"#, &limits).unwrap();
        assert_eq!(msg.version, 2);
        assert_eq!(
            msg.reported,
            Some(into_document(json!({"rate": 4})).unwrap())
        );
        assert_eq!(msg.rejected, None);
        let msg = decode_reported(br#"{"reported": {}}"#, &limits).unwrap();
        assert_eq!(msg.version, 0);
    }

    #[test]
    fn a_rejection_comes_with_or_without_reported_state() {
        let limits = DocumentLimits::default();
        let msg = decode_reported(
            br#"{"reported": {"fw": "2.4.0"}, "version": 8, "rejected": {"version": 9, "reason": "no space"}}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(msg.version, 8);
        assert!(msg.reported.is_some());
        let rejection = Rejection {
            version: 9,
            reason: "no space".to_owned(),
        };
        assert_eq!(msg.rejected, Some(rejection.clone()));
        let alone = decode_reported(
            br#"{"rejected": {"version": 9, "reason": "no space"}}"#,
            &limits,
        )
        .unwrap();
        assert_eq!((alone.reported, alone.rejected), (None, Some(rejection)));
        let longest = format!(
            r#"{{"rejected": {{"version": 1, "reason": "{}"}}}}"#,
            "é".repeat(MAX_REJECTION_REASON_CHARS)
        );
        assert!(decode_reported(longest.as_bytes(), &limits).is_ok());
        let null = decode_reported(br#"{"reported": {}, "rejected": null}"#, &limits).unwrap();
        assert_eq!(null.rejected, None);
    }

    #[test]
    fn a_rejection_of_another_shape_is_refused() {
        let limits = DocumentLimits::default();
        let too_long = format!(
            r#"{{"rejected": {{"version": 1, "reason": "{}"}}}}"#,
            "x".repeat(MAX_REJECTION_REASON_CHARS + 1)
        );
        let cases: [&[u8]; 8] = [
            too_long.as_bytes(),
            br#"{"rejected": 9}"#,
            br#"{"rejected": {"reason": "no version"}}"#,
            br#"{"rejected": {"version": -1, "reason": "x"}}"#,
            br#"{"rejected": {"version": "9", "reason": "x"}}"#,
            br#"{"rejected": {"version": 9}}"#,
            br#"{"rejected": {"version": 9, "reason": 42}}"#,
            br#"{"reported": {}, "rejected": {"version": 9, "reason": "a\u0000b"}}"#,
        ];
        for payload in cases {
            let err = decode_reported(payload, &limits).unwrap_err();
            assert_eq!(
                err.reason(),
                "bad_rejection",
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn reported_payload_rejects_bad_input_with_a_reason() {
        let limits = DocumentLimits {
            max_bytes: 64,
            max_depth: 3,
        };
        let cases: [(&[u8], &str); 10] = [
            (b"not json", "invalid_json"),
            (b"[1]", "invalid_shape"),
            (br#"{"version": 1}"#, "invalid_shape"),
            (br#"{"reported": [1]}"#, "reported_not_object"),
            (br#"{"reported": {}, "version": -1}"#, "bad_version"),
            (br#"{"reported": {}, "version": 1.5}"#, "bad_version"),
            (br#"{"reported": {}, "version": "3"}"#, "bad_version"),
            (
                br#"{"reported": {"a": {"b": {"c": {}}}}}"#,
                "document_limits",
            ),
            // PostgreSQL cannot store it: refused before any write.
            (br#"{"reported": {"s": "\u0000"}}"#, "document_limits"),
            (&[b' '; 2000], "too_large"),
        ];
        for (payload, reason) in cases {
            let err = decode_reported(payload, &limits).unwrap_err();
            assert_eq!(err.reason(), reason, "{}", String::from_utf8_lossy(payload));
        }
    }
}
