//! Shadow documents and the rules every stored document obeys: its size
//! and depth limits, and no NUL character (PostgreSQL's `jsonb`, like its
//! `text`, cannot hold `\u0000`).

use serde_json::{Map, Value};

/// A shadow document: always a JSON object.
pub type Document = Map<String, Value>;

/// The largest serialized document, in bytes, unless told otherwise
/// (`SHADOWBOX_MAX_DOCUMENT_BYTES`).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The deepest nesting of a document unless told otherwise
/// (`SHADOWBOX_MAX_DOCUMENT_DEPTH`); the document itself is level 1.
pub const DEFAULT_MAX_DOCUMENT_DEPTH: usize = 16;

/// Size and depth limits for a desired or reported document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest serialized size, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of objects and arrays; the document itself is level 1.
    pub max_depth: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_depth: DEFAULT_MAX_DOCUMENT_DEPTH,
        }
    }
}

/// Why a value is not an acceptable document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The value is not a JSON object.
    #[error("the document must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The serialized document is larger than allowed.
    #[error("the document is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Serialized size of the document.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The document nests deeper than allowed.
    #[error("the document nests {depth} levels deep, more than the limit of {limit}")]
    TooDeep {
        /// Nesting depth of the document.
        depth: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A key or a string value holds a NUL character (`\u0000`), which
    /// PostgreSQL cannot store.
    #[error("the document holds a NUL character (\\u0000) in {0}, which cannot be stored")]
    HoldsNul(&'static str),
}

/// The JSON type name of `value`, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Nesting depth of `value`: scalars are 0, an object or array is one more
/// than its deepest member.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Where `value` holds a NUL character: `"a key"` or `"a string"`.
fn nul_in(value: &Value) -> Option<&'static str> {
    match value {
        Value::Object(map) => nul_in_map(map),
        Value::Array(items) => items.iter().find_map(nul_in),
        Value::String(s) => s.contains('\0').then_some("a string"),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn nul_in_map(map: &Document) -> Option<&'static str> {
    map.iter().find_map(|(key, value)| {
        if key.contains('\0') {
            Some("a key")
        } else {
            nul_in(value)
        }
    })
}

impl DocumentLimits {
    /// Checks `doc` against the rules (depth, no NUL, size) and returns its
    /// serialized form, so callers that store or publish it do not
    /// serialize it twice.
    pub fn check(&self, doc: &Document) -> Result<Vec<u8>, DocumentError> {
        let depth = 1 + doc.values().map(depth).max().unwrap_or(0);
        if depth > self.max_depth {
            return Err(DocumentError::TooDeep {
                depth,
                limit: self.max_depth,
            });
        }
        if let Some(place) = nul_in_map(doc) {
            return Err(DocumentError::HoldsNul(place));
        }
        let bytes = serde_json::to_vec(doc).expect("a JSON map always serializes");
        if bytes.len() > self.max_bytes {
            return Err(DocumentError::TooLarge {
                size: bytes.len(),
                limit: self.max_bytes,
            });
        }
        Ok(bytes)
    }
}

/// Takes the object out of `value`, or says what it was instead.
pub fn into_document(value: Value) -> Result<Document, DocumentError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(DocumentError::NotAnObject(type_name(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Document {
        let mut value = json!(1);
        for _ in 1..levels {
            value = json!({ "k": value });
        }
        into_document(json!({ "k": value })).unwrap()
    }

    #[test]
    fn depth_counts_the_document_as_level_one() {
        let limits = DocumentLimits::default();
        assert!(limits.check(&nested(16)).is_ok());
        assert_eq!(
            limits.check(&nested(17)),
            Err(DocumentError::TooDeep {
                depth: 17,
                limit: 16
            })
        );
        let arrays = into_document(json!({"a": [[1]]})).unwrap();
        let tight = DocumentLimits {
            max_depth: 2,
            ..limits
        };
        assert!(matches!(
            tight.check(&arrays),
            Err(DocumentError::TooDeep { depth: 3, .. })
        ));
    }

    #[test]
    fn size_limit_is_exact() {
        // {"k":"xxx"} is 8 bytes plus the string.
        let limits = DocumentLimits {
            max_bytes: 20,
            max_depth: 16,
        };
        let fits = into_document(json!({ "k": "x".repeat(12) })).unwrap();
        assert_eq!(limits.check(&fits).unwrap().len(), 20);
        let over = into_document(json!({ "k": "x".repeat(13) })).unwrap();
        assert_eq!(
            limits.check(&over),
            Err(DocumentError::TooLarge {
                size: 21,
                limit: 20
            })
        );
    }

    #[test]
    fn nul_characters_are_refused_wherever_they_are() {
        let limits = DocumentLimits::default();
        for (doc, place) in [
            (json!({"a\u{0}b": 1}), "a key"),
            (json!({"s": "a\u{0}"}), "a string"),
            (json!({"n": {"deep": ["x", {"k\u{0}": null}]}}), "a key"),
            (json!({"n": [[1, "\u{0}"]]}), "a string"),
        ] {
            let doc = into_document(doc).unwrap();
            assert_eq!(limits.check(&doc), Err(DocumentError::HoldsNul(place)));
        }
        // An escaped backslash followed by "u0000" is not a NUL character.
        let text = into_document(json!({"s": "\\u0000", "u0000": "0"})).unwrap();
        assert!(limits.check(&text).is_ok());
    }

    #[test]
    fn only_objects_are_documents() {
        assert_eq!(
            into_document(json!([1])),
            Err(DocumentError::NotAnObject("an array"))
        );
        assert_eq!(
            into_document(json!(null)),
            Err(DocumentError::NotAnObject("null"))
        );
    }
}
