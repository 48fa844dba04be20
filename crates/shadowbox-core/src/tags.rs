//! Device tags: service-side labels that select devices (a device list's
//! `?tag=key:value` filter, a rollout's selector) and are never published
//! to devices.
//!
//! A key is 1–63 characters of `a-z 0-9 _ . - /`; a value is 0–256
//! characters without a NUL character (PostgreSQL's `text` cannot hold
//! one); a device has at most 32 tags.

use std::collections::BTreeMap;

/// Longest tag key, in characters.
pub const MAX_TAG_KEY_LEN: usize = 63;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Most tags on one device (and in one selector).
pub const MAX_TAGS: usize = 32;
/// The key alphabet as a regular expression's bracket expression, for the
/// OpenAPI document; a test keeps it equal to [`check_key`].
pub const TAG_KEY_CLASS: &str = "[a-z0-9_./-]";

/// A device's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// Why tags (or a tag filter) are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// More tags than [`MAX_TAGS`].
    #[error("at most {MAX_TAGS} tags are allowed, got {0}")]
    TooMany(usize),
    /// A key that is empty, too long or holds a character outside the
    /// alphabet.
    #[error("tag key {0:?} must be 1-{MAX_TAG_KEY_LEN} characters of a-z 0-9 _ . - /")]
    BadKey(String),
    /// A value that is too long or holds a NUL character.
    #[error(
        "the value of tag {0:?} must be at most {MAX_TAG_VALUE_LEN} characters without a NUL character"
    )]
    BadValue(String),
    /// A filter that is not `key:value`.
    #[error("a tag filter is key:value, got {0:?}")]
    BadFilter(String),
}

/// Checks one key.
pub fn check_key(key: &str) -> Result<(), TagError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_TAG_KEY_LEN
        && key
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'/'));
    if valid {
        Ok(())
    } else {
        Err(TagError::BadKey(key.to_owned()))
    }
}

/// Checks a whole set of tags: the count, every key and every value.
pub fn check_tags(tags: &Tags) -> Result<(), TagError> {
    if tags.len() > MAX_TAGS {
        return Err(TagError::TooMany(tags.len()));
    }
    for (key, value) in tags {
        check_key(key)?;
        if value.chars().count() > MAX_TAG_VALUE_LEN || value.contains('\0') {
            return Err(TagError::BadValue(key.clone()));
        }
    }
    Ok(())
}

/// Parses the `key:value` filters of a device list (`?tag=site:berlin`,
/// repeatable; the value may hold `:`), checked as tags are. The same
/// filter twice is one filter. `None` when a key is given with two values,
/// which no device has at once: the list is empty (any such query is a
/// well-formed request, as the OpenAPI document says).
pub fn parse_filters<'a>(
    filters: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Tags>, TagError> {
    let mut tags = Tags::new();
    let mut count = 0;
    let mut conflict = false;
    for filter in filters {
        count += 1;
        let (key, value) = filter
            .split_once(':')
            .ok_or_else(|| TagError::BadFilter(filter.to_owned()))?;
        check_key(key)?;
        if let Some(earlier) = tags.insert(key.to_owned(), value.to_owned()) {
            conflict |= earlier != value;
        }
    }
    if count > MAX_TAGS {
        return Err(TagError::TooMany(count));
    }
    check_tags(&tags)?;
    Ok((!conflict).then_some(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_states_the_key_alphabet() {
        let class = regex::Regex::new(&format!("^{TAG_KEY_CLASS}$")).unwrap();
        for c in (0..=0x7f_u8).map(char::from) {
            let one = c.to_string();
            assert_eq!(class.is_match(&one), check_key(&one).is_ok(), "{c:?}");
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_follow_the_alphabet_and_length() {
        for good in ["site", "a", "k8s.io/zone", "x_y-z.0", &"k".repeat(63)] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in ["", "Site", "a b", "a:b", "ü", &"k".repeat(64)] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_count_characters_and_refuse_nul() {
        assert_eq!(check_tags(&tags(&[("a", "")])), Ok(()));
        assert_eq!(check_tags(&tags(&[("a", &"ü".repeat(256))])), Ok(()));
        assert_eq!(
            check_tags(&tags(&[("a", &"x".repeat(257))])),
            Err(TagError::BadValue("a".to_owned()))
        );
        assert!(check_tags(&tags(&[("a", "x\0")])).is_err());
    }

    #[test]
    fn at_most_32_tags() {
        let many: Tags = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check_tags(&many), Err(TagError::TooMany(33)));
        let enough: Tags = many.into_iter().take(32).collect();
        assert_eq!(check_tags(&enough), Ok(()));
    }

    #[test]
    fn filters_split_at_the_first_colon() {
        assert_eq!(
            parse_filters(["site:berlin", "url:http://x"]),
            Ok(Some(tags(&[("site", "berlin"), ("url", "http://x")])))
        );
        assert_eq!(parse_filters(["empty:"]), Ok(Some(tags(&[("empty", "")]))));
        assert_eq!(parse_filters(["a:1", "a:1"]), Ok(Some(tags(&[("a", "1")]))));
        assert_eq!(parse_filters(["a:1", "b:2", "a:2"]), Ok(None));
        for bad in [
            vec!["site"],
            vec![":x"],
            vec!["Site:x"],
            vec!["a:1", "B:2", "a:2"],
        ] {
            assert!(parse_filters(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
