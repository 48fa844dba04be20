//! Turns a batch of raw messages into at most one update per device, and
//! says what becomes of every message. Pure: no I/O.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use shadowbox_core::DocumentLimits;
use shadowbox_core::payload::{ReportedError, decode_reported};
use shadowbox_core::topic::{ShadowTopicKind, TopicError, parse_shadow_topic};
use shadowbox_db::reported::ReportedUpdate;

/// Why a message is refused before it reaches the database.
#[derive(Debug)]
pub(crate) enum Invalid {
    /// The topic is not a device's reported topic.
    Topic(TopicError),
    /// The topic is a device's desired topic.
    NotReported,
    /// The payload is refused.
    Payload(ReportedError),
}

impl Invalid {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Topic(_) | Self::NotReported => "bad_topic",
            Self::Payload(e) => e.reason(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Topic(e) => write!(f, "{e}"),
            Self::NotReported => f.write_str("not a reported topic"),
            Self::Payload(e) => write!(f, "{e}"),
        }
    }
}

/// What becomes of one message of the batch.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Refused; never reaches the database.
    Invalid(Invalid),
    /// Written as `updates[i]`.
    Update(usize),
    /// Replaced by `updates[i]`, a message of the same device in this batch
    /// with a higher version, or the same version received later.
    Superseded(usize),
}

/// A batch ready to write.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// At most one update per device, the winner of its messages.
    pub updates: Vec<ReportedUpdate>,
    /// One verdict per message, in receive order.
    pub verdicts: Vec<Verdict>,
}

/// Decodes `messages` (topic, payload, arrival, in receive order),
/// validates them against `limits` and keeps per device the message that
/// wins: the highest version, and among equal versions the latest received.
pub(crate) fn plan<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a [u8], DateTime<Utc>)>,
    limits: &DocumentLimits,
) -> Plan {
    let mut plan = Plan::default();
    // Per device: its update's index, and the message that owns it.
    let mut winners: HashMap<(String, String), (usize, usize)> = HashMap::new();
    for (topic, payload, received_at) in messages {
        let index = plan.verdicts.len();
        let decoded = match parse_shadow_topic(topic) {
            Err(e) => Err(Invalid::Topic(e)),
            Ok((_, _, ShadowTopicKind::Desired)) => Err(Invalid::NotReported),
            Ok((tenant, device, ShadowTopicKind::Reported)) => decode_reported(payload, limits)
                .map(|message| (tenant, device, message))
                .map_err(Invalid::Payload),
        };
        let (tenant, device, message) = match decoded {
            Ok(decoded) => decoded,
            Err(invalid) => {
                plan.verdicts.push(Verdict::Invalid(invalid));
                continue;
            }
        };
        let update = ReportedUpdate {
            tenant_id: tenant.into_string(),
            device_id: device.into_string(),
            reported: message.reported,
            version: message.version,
            received_at,
        };
        let key = (update.tenant_id.clone(), update.device_id.clone());
        match winners.get_mut(&key) {
            None => {
                winners.insert(key, (plan.updates.len(), index));
                plan.verdicts.push(Verdict::Update(plan.updates.len()));
                plan.updates.push(update);
            }
            Some((slot, owner)) if update.version >= plan.updates[*slot].version => {
                plan.verdicts[*owner] = Verdict::Superseded(*slot);
                plan.verdicts.push(Verdict::Update(*slot));
                plan.updates[*slot] = update;
                *owner = index;
            }
            Some((slot, _)) => plan.verdicts.push(Verdict::Superseded(*slot)),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(messages: &[(&str, &str)]) -> Plan {
        let now = Utc::now();
        plan(
            messages
                .iter()
                .map(|(topic, payload)| (*topic, payload.as_bytes(), now)),
            &DocumentLimits::default(),
        )
    }

    const A: &str = "tenant/t/device/a/shadow/reported";
    const B: &str = "tenant/t/device/b/shadow/reported";

    #[test]
    fn highest_version_wins_and_ties_go_to_the_latest() {
        let plan = run(&[
            (A, r#"{"reported": {"n": 1}, "version": 5}"#),
            (B, r#"{"reported": {"n": 2}, "version": 1}"#),
            (A, r#"{"reported": {"n": 3}, "version": 3}"#),
            (B, r#"{"reported": {"n": 4}, "version": 1}"#),
            (A, r#"{"reported": {"n": 5}, "version": 5}"#),
        ]);
        assert_eq!(plan.updates.len(), 2);
        let a = &plan.updates[0];
        assert_eq!((a.device_id.as_str(), a.version), ("a", 5));
        assert_eq!(a.reported["n"], 5);
        assert_eq!(plan.updates[1].reported["n"], 4);
        let shape: Vec<String> = plan.verdicts.iter().map(|v| format!("{v:?}")).collect();
        assert_eq!(
            shape,
            [
                "Superseded(0)",
                "Superseded(1)",
                "Superseded(0)",
                "Update(1)",
                "Update(0)"
            ]
        );
    }

    #[test]
    fn invalid_messages_are_refused_with_a_reason() {
        let plan = run(&[
            ("tenant/t/device/a b/shadow/reported", r#"{"reported": {}}"#),
            ("tenant/t/device/a/shadow/desired", r#"{"reported": {}}"#),
            (A, "{"),
            (A, r#"{"reported": 1}"#),
            (A, r#"{"reported": {}, "version": -2}"#),
        ]);
        assert!(plan.updates.is_empty());
        let reasons: Vec<&str> = plan
            .verdicts
            .iter()
            .map(|v| match v {
                Verdict::Invalid(invalid) => invalid.reason(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "bad_topic",
                "bad_topic",
                "invalid_json",
                "reported_not_object",
                "bad_version"
            ]
        );
    }
}
