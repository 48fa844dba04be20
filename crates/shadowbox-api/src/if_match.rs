//! `If-Match` on desired writes. Accepted: `"<desired_version>"` (the
//! device's ETag: 1 to 18 digits in quotes) and `*` (no condition on the
//! version). A weak tag of that form (`W/"3"`) never matches (412): RFC
//! 9110 compares `If-Match` strongly. Anything else (several tags, other
//! tags) answers 400. [`ANY`] and [`TAG_PATTERN`] state the same for the
//! OpenAPI document.

use axum::http::{HeaderMap, header};

use crate::problem::ApiError;

/// No condition on the version.
pub const ANY: &str = "*";
/// The accepted entity tags as a regular expression: with [`ANY`], every
/// value [`expected_version`] does not refuse with 400 (a test keeps them
/// equal).
pub const TAG_PATTERN: &str = r#"^(W/)?"[0-9]{1,18}"$"#;

/// Most digits of a version in an entity tag: every such number fits an
/// `i64`.
const MAX_DIGITS: usize = 18;

/// The desired version a write requires, if `If-Match` sets one.
pub fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value.as_bytes();
    if value == ANY.as_bytes() {
        return Ok(None);
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
    if weak {
        return Err(ApiError::precondition_failed(
            "If-Match compares strongly: a weak entity tag (W/) never matches",
        ));
    }
    Ok(Some(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;

    fn parse(value: &str) -> Result<Option<i64>, StatusCode> {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        expected_version(&headers).map_err(|e| e.into_response().status())
    }

    #[test]
    fn forms() {
        assert_eq!(expected_version(&HeaderMap::new()).unwrap(), None);
        assert_eq!(parse("\"3\""), Ok(Some(3)));
        assert_eq!(parse("\"007\""), Ok(Some(7)));
        assert_eq!(
            parse("\"999999999999999999\""),
            Ok(Some(999_999_999_999_999_999))
        );
        assert_eq!(parse("*"), Ok(None));
        assert_eq!(parse("W/\"3\""), Err(StatusCode::PRECONDITION_FAILED));
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
