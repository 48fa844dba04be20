//! `If-Match` on desired writes. Accepted: `"<desired_version>"` (the
//! device's ETag) and `*` (no condition on the version). A weak tag
//! (`W/"3"`) never matches: RFC 9110 compares `If-Match` strongly. Several
//! tags or anything else answer 400.

use axum::http::{HeaderMap, header};

use crate::problem::ApiError;

/// The desired version a write requires, if `If-Match` sets one.
pub fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not ASCII"))?
        .trim();
    if value == "*" {
        return Ok(None);
    }
    if value.starts_with("W/") {
        return Err(ApiError::precondition_failed(
            "If-Match compares strongly: a weak entity tag (W/) never matches",
        ));
    }
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "If-Match must be one entity tag like \"3\" (the device's ETag), got {value}"
            ))
        })
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
        assert_eq!(parse("*"), Ok(None));
        assert_eq!(parse("W/\"3\""), Err(StatusCode::PRECONDITION_FAILED));
        assert_eq!(parse("3"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(parse("\"3\", \"4\""), Err(StatusCode::BAD_REQUEST));
        assert_eq!(parse("\"x\""), Err(StatusCode::BAD_REQUEST));
    }
}
