//! The shadow delta: what the device still has to apply.

use serde_json::{Map, Value};

use crate::Document;

/// The parts of `desired` that differ from `reported`, recursing into
/// objects present on both sides (as the AWS IoT shadow delta does). Keys
/// only in `reported` do not appear; arrays and scalars compare whole.
pub fn delta(desired: &Document, reported: &Document) -> Document {
    let mut out = Map::new();
    for (key, want) in desired {
        match (want, reported.get(key)) {
            (Value::Object(want), Some(Value::Object(have))) => {
                let inner = delta(want, have);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            (want, Some(have)) if want == have => {}
            (want, _) => {
                out.insert(key.clone(), want.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Document {
        crate::document::into_document(value).unwrap()
    }

    #[test]
    fn equal_documents_have_no_delta() {
        let d = doc(json!({"a": 1, "b": {"c": [1, 2]}}));
        assert!(delta(&d, &d).is_empty());
    }

    #[test]
    fn nested_objects_recurse() {
        let desired = doc(json!({"net": {"mtu": 1500, "dns": "a"}, "rate": 5}));
        let reported = doc(json!({"net": {"mtu": 1400, "dns": "a"}, "rate": 5}));
        assert_eq!(
            delta(&desired, &reported),
            doc(json!({"net": {"mtu": 1500}}))
        );
    }

    #[test]
    fn arrays_compare_whole() {
        let desired = doc(json!({"list": [1, 2, 3]}));
        let reported = doc(json!({"list": [1, 2]}));
        assert_eq!(delta(&desired, &reported), desired);
    }

    #[test]
    fn type_changes_take_the_desired_value() {
        let desired = doc(json!({"a": {"x": 1}, "b": "5", "c": null}));
        let reported = doc(json!({"a": 7, "b": 5, "c": 0}));
        assert_eq!(delta(&desired, &reported), desired);
    }

    #[test]
    fn keys_only_in_reported_are_ignored_and_missing_keys_are_included() {
        let desired = doc(json!({"want": true}));
        let reported = doc(json!({"extra": 1}));
        assert_eq!(delta(&desired, &reported), desired);
    }
}
