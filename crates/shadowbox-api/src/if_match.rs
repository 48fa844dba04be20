//! `If-Match` on desired writes. Accepted: `"<desired_version>"` (the
//! device's ETag: 1 to 18 digits in quotes) and `*` (no condition on the
//! version). A weak tag of that form (`W/"3"`) never matches: RFC 9110
//! compares `If-Match` strongly, so a write that would otherwise succeed
//! answers 412. Anything else (several tags, other tags) answers 400. [`ANY`] and [`TAG_PATTERN`] state the same for the
//! OpenAPI document.

use axum::http::{HeaderMap, header};

use crate::problem::ApiError;

/// No condition on the version.
pub const ANY: &str = "*";
/// The accepted entity tags as a regular expression: with [`ANY`], every
/// value [`precondition`] does not refuse with 400 (a test keeps them
/// equal).
pub const TAG_PATTERN: &str = r#"^(W/)?"[0-9]{1,18}"$"#;

/// Most digits of a version in an entity tag: every such number fits an
/// `i64`.
const MAX_DIGITS: usize = 18;

/// What `If-Match` asks of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing (no header, or `*`).
    None,
    /// The device's desired version must be this one.
    Version(i64),
    /// A weak tag: no version matches (412 where the write would succeed).
    Never,
}

/// What `If-Match` asks of a write; 400 when it is malformed.
pub fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(Precondition::None);
    };
    let value = value.as_bytes();
    if value == ANY.as_bytes() {
        return Ok(Precondition::None);
    }
    let (weak, tag) = match value.strip_prefix(b"W/") {
        Some(tag) => (true, tag),
        None => (false, value),
    };
    let version = tag
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .filter(|v| (1..=MAX_DIGITS).contains(&v.len()) && v.iter().all(u8::is_ascii_digit))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "If-Match must be one entity tag like \"3\" (the device's ETag), got {}",
                String::from_utf8_lossy(value)
            ))
        })?;
    Ok(if weak {
        Precondition::Never
    } else {
        Precondition::Version(version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    fn parse(value: &str) -> Result<Precondition, StatusCode> {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        precondition(&headers).map_err(|e| e.into_response().status())
    }

    #[test]
    fn forms() {
        assert_eq!(precondition(&HeaderMap::new()).unwrap(), Precondition::None);
        assert_eq!(parse("\"3\""), Ok(Precondition::Version(3)));
        assert_eq!(parse("\"007\""), Ok(Precondition::Version(7)));
        assert_eq!(
            parse("\"999999999999999999\""),
            Ok(Precondition::Version(999_999_999_999_999_999))
        );
        assert_eq!(parse("*"), Ok(Precondition::None));
        assert_eq!(parse("W/\"3\""), Ok(Precondition::Never));
        for refused in [
            "3",
            "\"3\", \"4\"",
            "\"x\"",
            "\"+3\"",
            "\"-3\"",
            "\"\"",
            "\"9999999999999999999\"",
            "W/\"x\"",
            " \"3\"",
            "null",
            "",
        ] {
            assert_eq!(parse(refused), Err(StatusCode::BAD_REQUEST), "{refused:?}");
        }
    }

    /// [`ANY`] and [`TAG_PATTERN`] match exactly the values that are not
    /// refused with 400, over strings of the characters that matter.
    #[test]
    fn the_pattern_states_the_forms() {
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;
        let pattern = regex::Regex::new(TAG_PATTERN).unwrap();
        let chars = proptest::sample::select(vec![
            '"', 'W', '/', '*', '0', '1', '9', 'x', ' ', ',', '+', '-',
        ]);
        let values = proptest::collection::vec(chars, 0..22)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        let mut runner = TestRunner::default();
        runner
            .run(&values, |value| {
                let stated = value == ANY || pattern.is_match(&value);
                let accepted = parse(&value) != Err(StatusCode::BAD_REQUEST);
                prop_assert_eq!(stated, accepted, "{:?}", value);
                Ok(())
            })
            .unwrap();
        for value in ["\"3\"", "W/\"3\"", "\"123456789012345678\""] {
            assert!(pattern.is_match(value), "{value}");
        }
    }
}
