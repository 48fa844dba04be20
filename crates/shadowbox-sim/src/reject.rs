//! When a simulated device refuses a desired version: a document holding
//! one of the `--reject-when key=value` pairs, or a random share of the
//! versions (`--reject-rate`), the same decision for every delivery of a
//! version to a device.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use shadowbox_core::payload::DesiredMessage;

use crate::connection::unit;

/// A top-level `key` whose value in the desired document makes a device
/// refuse it: `key=value`, the value read as JSON when it is JSON (`5`,
/// `true`, `"x"`), else as a string.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectWhen {
    /// The top-level key.
    pub key: String,
    /// The value that is refused.
    pub value: Value,
}

impl FromStr for RejectWhen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (key, value) = text
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| format!("{text:?} is not key=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        Ok(Self {
            key: key.to_owned(),
            value,
        })
    }
}

impl fmt::Display for RejectWhen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// What makes the devices of a run refuse a version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RejectRule {
    /// Fraction (0–1) of the versions each device refuses.
    pub rate: f64,
    /// Documents holding any of these are refused.
    pub when: Vec<RejectWhen>,
}

impl RejectRule {
    /// Why the device `seed` stands for refuses `message`, if it does.
    pub(crate) fn reason(&self, seed: u64, message: &DesiredMessage) -> Option<String> {
        if let Some(when) = self
            .when
            .iter()
            .find(|when| message.desired.get(&when.key) == Some(&when.value))
        {
            return Some(format!("refuses {when} (simulated)"));
        }
        let version = u64::try_from(message.version).unwrap_or_default();
        (unit(seed, version) < self.rate).then(|| {
            format!(
                "refuses version {} at random (simulated, --reject-rate {})",
                message.version, self.rate
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(desired: Value, version: i64) -> DesiredMessage {
        let Value::Object(desired) = desired else {
            panic!("an object")
        };
        DesiredMessage {
            desired,
            version,
            timestamp: chrono::Utc::now(),
        }
    }

    #[test]
    fn reject_when_reads_json_values_and_plain_strings() {
        let number: RejectWhen = "rate=5".parse().unwrap();
        assert_eq!(number.value, serde_json::json!(5));
        let text: RejectWhen = "firmware=2.4.1".parse().unwrap();
        assert_eq!(text.value, serde_json::json!("2.4.1"));
        assert!("=5".parse::<RejectWhen>().is_err());
        assert!("rate".parse::<RejectWhen>().is_err());
    }

    #[test]
    fn a_matching_document_is_refused_and_others_are_not() {
        let rule = RejectRule {
            rate: 0.0,
            when: vec!["firmware=2.4.1".parse().unwrap()],
        };
        let refused = message(serde_json::json!({"firmware": "2.4.1"}), 3);
        assert!(rule.reason(1, &refused).unwrap().contains("firmware"));
        let fine = message(serde_json::json!({"firmware": "2.4.0"}), 3);
        assert_eq!(rule.reason(1, &fine), None);
    }

    #[test]
    fn the_rate_picks_the_same_versions_every_time() {
        let rule = RejectRule {
            rate: 0.3,
            when: Vec::new(),
        };
        let picked: Vec<bool> = (1..=1000)
            .map(|v| rule.reason(7, &message(serde_json::json!({}), v)).is_some())
            .collect();
        let again: Vec<bool> = (1..=1000)
            .map(|v| rule.reason(7, &message(serde_json::json!({}), v)).is_some())
            .collect();
        assert_eq!(picked, again);
        let share = picked.iter().filter(|p| **p).count() as f64 / 1000.0;
        assert!((0.25..0.35).contains(&share), "{share}");
        let all = RejectRule {
            rate: 1.0,
            when: Vec::new(),
        };
        assert!(all.reason(7, &message(serde_json::json!({}), 1)).is_some());
    }
}
