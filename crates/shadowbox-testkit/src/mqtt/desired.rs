//! Reading desired messages as devices see them: the version a payload
//! carries and whether any topic ever went backwards.

use std::collections::HashMap;

use super::Message;

/// The filter of every device's desired topic.
pub const ALL_DESIRED: &str = "tenant/+/device/+/shadow/desired";

/// The version a desired payload carries; -1 for a clear.
pub fn version_of(payload: &[u8]) -> i64 {
    shadowbox_core::payload::decode_desired(payload)
        .expect("a desired payload")
        .map_or(-1, |m| m.version)
}

/// The versions each topic received, in arrival order (a clear is -1).
pub fn versions_by_topic(messages: &[Message]) -> HashMap<String, Vec<i64>> {
    let mut by_topic: HashMap<String, Vec<i64>> = HashMap::new();
    for m in messages {
        by_topic
            .entry(m.topic.clone())
            .or_default()
            .push(version_of(&m.payload));
    }
    by_topic
}

/// Panics if any topic received a lower version after a higher one.
pub fn assert_never_regressed(messages: &[Message]) {
    for (topic, versions) in versions_by_topic(messages) {
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{topic} went backwards: {versions:?}"
        );
    }
}
