//! One simulated device's rules: apply the newest desired document, ignore
//! an older one, forget everything on a clear, and report what it applied.

use shadowbox_core::Document;
use shadowbox_core::payload::decode_desired;

use crate::stats::Event;

/// What a device has applied.
#[derive(Debug, Default)]
pub(crate) struct Device {
    applied: Option<(i64, Document)>,
}

/// What a desired message made a device do.
#[derive(Debug, PartialEq)]
pub(crate) enum Reaction {
    /// Applied: publish this reported payload.
    Report(Vec<u8>),
    /// Nothing to report; counted as this event.
    Ignored(Event),
}

impl Device {
    /// Handles one desired payload.
    pub(crate) fn on_desired(&mut self, payload: &[u8]) -> Reaction {
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

    #[test]
    fn applies_newer_and_equal_versions_and_ignores_older() {
        let mut device = Device::default();
        assert_eq!(device.on_desired(&desired(1, 2)), report(1, 2));
        assert_eq!(
            device.on_desired(&desired(9, 1)),
            Reaction::Ignored(Event::Stale)
        );
        assert_eq!(device.on_desired(&desired(1, 2)), report(1, 2));
        assert_eq!(device.on_desired(&desired(3, 5)), report(3, 5));
    }

    #[test]
    fn a_clear_forgets_the_applied_version() {
        let mut device = Device::default();
        assert_eq!(device.on_desired(&desired(1, 5)), report(1, 5));
        assert_eq!(device.on_desired(b""), Reaction::Ignored(Event::Cleared));
        assert_eq!(device.on_desired(&desired(2, 1)), report(2, 1));
    }

    #[test]
    fn invalid_payloads_change_nothing() {
        let mut device = Device::default();
        assert_eq!(device.on_desired(&desired(1, 3)), report(1, 3));
        assert_eq!(
            device.on_desired(b"{not json"),
            Reaction::Ignored(Event::Invalid)
        );
        assert_eq!(
            device.on_desired(&desired(1, 2)),
            Reaction::Ignored(Event::Stale)
        );
    }
}
