//! One simulated device's rules: apply the newest desired document (unless
//! the run's [`RejectRule`] makes it refuse it), ignore an older one,
//! forget everything on a clear, and report what it applied.

use shadowbox_core::Document;
use shadowbox_core::payload::decode_desired;

use crate::reject::RejectRule;
use crate::stats::Event;

/// What a device has applied.
#[derive(Debug, Default)]
pub(crate) struct Device {
    /// Stands for the device in its random decisions.
    seed: u64,
    applied: Option<(i64, Document)>,
}

/// What a desired message made a device do.
#[derive(Debug, PartialEq)]
pub(crate) enum Reaction {
    /// Applied: publish this reported payload.
    Report(Vec<u8>),
    /// Refused: publish this reported payload, which keeps the version it
    /// applied and says why it refuses the new one.
    Reject(Vec<u8>),
    /// Nothing to report; counted as this event.
    Ignored(Event),
}

impl Device {
    /// A device that has applied nothing yet; `seed` stands for it in its
    /// random decisions.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            applied: None,
        }
    }

    /// Handles one desired payload.
    pub(crate) fn on_desired(&mut self, payload: &[u8], rule: &RejectRule) -> Reaction {
        match decode_desired(payload) {
            Err(_) => Reaction::Ignored(Event::Invalid),
            Ok(None) => {
                self.applied = None;
                Reaction::Ignored(Event::Cleared)
            }
            Ok(Some(message)) => {
                if self
                    .applied
                    .as_ref()
                    .is_some_and(|(version, _)| message.version < *version)
                {
                    return Reaction::Ignored(Event::Stale);
                }
                if let Some(reason) = rule.reason(self.seed, &message) {
                    let nothing = Document::new();
                    let (version, applied) = self
                        .applied
                        .as_ref()
                        .map_or((0, &nothing), |(v, doc)| (*v, doc));
                    let report = serde_json::json!({
                        "reported": applied,
                        "version": version,
                        "rejected": {"version": message.version, "reason": reason},
                    });
                    return Reaction::Reject(report.to_string().into_bytes());
                }
                // The same version again (a redelivery after a reconnect)
                // is applied and reported again: harmless, as on a device.
                let report = reported_payload(&message.desired, message.version);
                self.applied = Some((message.version, message.desired));
                Reaction::Report(report)
            }
        }
    }
}

/// `{"reported": <document>, "version": <version>}`.
fn reported_payload(reported: &Document, version: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "reported": reported, "version": version }))
        .expect("a JSON map always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(rate: i64, version: i64) -> Vec<u8> {
        format!(
            r#"{{"desired":{{"rate":{rate}}},"version":{version},"timestamp":"2026-11-27T04:00:00.000Z"}}"#
        )
        .into_bytes()
    }

    fn report(rate: i64, version: i64) -> Reaction {
        Reaction::Report(
            format!(r#"{{"reported":{{"rate":{rate}}},"version":{version}}}"#).into_bytes(),
        )
    }

    /// `device.on_desired` with no rejections.
    fn apply(device: &mut Device, payload: &[u8]) -> Reaction {
        device.on_desired(payload, &RejectRule::default())
    }

    #[test]
    fn a_refused_version_is_reported_beside_the_one_applied() {
        let rule = RejectRule {
            rate: 0.0,
            when: vec!["rate=3".parse().unwrap()],
        };
        let mut device = Device::default();
        assert_eq!(device.on_desired(&desired(1, 2), &rule), report(1, 2));
        let Reaction::Reject(payload) = device.on_desired(&desired(3, 4), &rule) else {
            panic!("version 4 sets rate 3: refused")
        };
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload["reported"], serde_json::json!({"rate": 1}));
        assert_eq!(payload["version"], 2);
        assert_eq!(payload["rejected"]["version"], 4);
        assert!(
            payload["rejected"]["reason"]
                .as_str()
                .unwrap()
                .contains("rate=3")
        );
        // It still takes the next version it accepts.
        assert_eq!(device.on_desired(&desired(5, 5), &rule), report(5, 5));
    }

    #[test]
    fn applies_newer_and_equal_versions_and_ignores_older() {
        let mut device = Device::default();
        assert_eq!(apply(&mut device, &desired(1, 2)), report(1, 2));
        assert_eq!(
            apply(&mut device, &desired(9, 1)),
            Reaction::Ignored(Event::Stale)
        );
        assert_eq!(apply(&mut device, &desired(1, 2)), report(1, 2));
        assert_eq!(apply(&mut device, &desired(3, 5)), report(3, 5));
    }

    #[test]
    fn a_clear_forgets_the_applied_version() {
        let mut device = Device::default();
        assert_eq!(apply(&mut device, &desired(1, 5)), report(1, 5));
        assert_eq!(apply(&mut device, b""), Reaction::Ignored(Event::Cleared));
        assert_eq!(apply(&mut device, &desired(2, 1)), report(2, 1));
    }

    #[test]
    fn invalid_payloads_change_nothing() {
        let mut device = Device::default();
        assert_eq!(apply(&mut device, &desired(1, 3)), report(1, 3));
        assert_eq!(
            apply(&mut device, b"{not json"),
            Reaction::Ignored(Event::Invalid)
        );
        assert_eq!(
            apply(&mut device, &desired(1, 2)),
            Reaction::Ignored(Event::Stale)
        );
    }
}
