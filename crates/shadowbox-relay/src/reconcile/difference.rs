//! The reconcile rule: what the broker should retain for a device, given
//! the database, and the name of each way it can differ.
//!
//! An active device with a desired version retains exactly that version's
//! document; a decommissioned device, and an active one still at version
//! 0, retain nothing. Versions decide, the document breaks a tie (the
//! timestamp does not: a republish of the same version carries a new one).

use serde::Serialize;
use shadowbox_core::device::DeviceStatus;
use shadowbox_core::payload::decode_desired;
use shadowbox_db::reconcile::DeviceSnapshot;

/// How a device's retained desired message differs from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Nothing retained for a device that has a desired version.
    Missing,
    /// A lower version than the database's is retained.
    Older,
    /// A higher version than the database's is retained: only a client
    /// other than shadowbox can have put it there (an alarm).
    Newer,
    /// What is retained is not a desired message, or has the database's
    /// version with another document.
    Malformed,
    /// Something is retained for a decommissioned device, or for one with
    /// no desired state yet.
    NotCleared,
}

impl DifferenceKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 5] = [
        Self::Missing,
        Self::Older,
        Self::Newer,
        Self::Malformed,
        Self::NotCleared,
    ];

    /// Its metric label and report name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Older => "older",
            Self::Newer => "newer",
            Self::Malformed => "malformed",
            Self::NotCleared => "not_cleared",
        }
    }
}

/// What a difference is, with the retained version when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// How it differs.
    pub kind: DifferenceKind,
    /// The retained message's version, when it has one.
    pub retained_version: Option<i64>,
}

/// Compares the device's `retained` payload (`None`: nothing retained)
/// with its state in the database; `None` when they agree.
pub fn judge(device: &DeviceSnapshot, retained: Option<&[u8]>) -> Option<Verdict> {
    let active = device.status == DeviceStatus::Active;
    let expects_nothing = !active || device.desired_version == 0;
    let verdict = |kind, retained_version| {
        Some(Verdict {
            kind,
            retained_version,
        })
    };
    let Some(payload) = retained.filter(|p| !p.is_empty()) else {
        return if expects_nothing {
            None
        } else {
            verdict(DifferenceKind::Missing, None)
        };
    };
    let message = decode_desired(payload).ok().flatten();
    let version = message.as_ref().map(|m| m.version);
    if !active {
        return verdict(DifferenceKind::NotCleared, version);
    }
    let Some(message) = message else {
        return verdict(DifferenceKind::Malformed, None);
    };
    let kind = if message.version > device.desired_version {
        DifferenceKind::Newer
    } else if expects_nothing {
        DifferenceKind::NotCleared
    } else if message.version < device.desired_version {
        DifferenceKind::Older
    } else if message.desired != device.desired_state.0 {
        DifferenceKind::Malformed
    } else {
        return None;
    };
    verdict(kind, version)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use shadowbox_core::document::into_document;
    use shadowbox_core::payload::encode_desired;
    use sqlx::types::Json;

    use super::*;

    fn device(status: DeviceStatus, version: i64, desired: serde_json::Value) -> DeviceSnapshot {
        DeviceSnapshot {
            device_id: "d".parse().unwrap(),
            status,
            desired_state: Json(into_document(desired).unwrap()),
            desired_version: version,
            newest_row_id: None,
            newest_row_status: None,
        }
    }

    fn payload(version: i64, desired: serde_json::Value) -> Vec<u8> {
        encode_desired(&into_document(desired).unwrap(), version, Utc::now())
    }

    fn kind(
        device: &DeviceSnapshot,
        retained: Option<&[u8]>,
    ) -> Option<(&'static str, Option<i64>)> {
        judge(device, retained).map(|v| (v.kind.label(), v.retained_version))
    }

    #[test]
    fn an_active_device_retains_exactly_its_version() {
        let d = device(DeviceStatus::Active, 3, json!({"a": 1}));
        assert_eq!(kind(&d, Some(&payload(3, json!({"a": 1})))), None);
        assert_eq!(kind(&d, None), Some(("missing", None)));
        assert_eq!(
            kind(&d, Some(&payload(2, json!({"a": 1})))),
            Some(("older", Some(2)))
        );
        assert_eq!(
            kind(&d, Some(&payload(9, json!({"a": 1})))),
            Some(("newer", Some(9)))
        );
        assert_eq!(
            kind(&d, Some(&payload(3, json!({"a": 2})))),
            Some(("malformed", Some(3)))
        );
        assert_eq!(kind(&d, Some(b"not json")), Some(("malformed", None)));
        assert_eq!(
            kind(&d, Some(br#"{"version": 3}"#)),
            Some(("malformed", None))
        );
    }

    #[test]
    fn decommissioned_and_version_0_devices_retain_nothing() {
        let gone = device(DeviceStatus::Decommissioned, 4, json!({"a": 1}));
        assert_eq!(kind(&gone, None), None);
        assert_eq!(
            kind(&gone, Some(&payload(4, json!({"a": 1})))),
            Some(("not_cleared", Some(4)))
        );
        assert_eq!(kind(&gone, Some(b"x")), Some(("not_cleared", None)));
        let fresh = device(DeviceStatus::Active, 0, json!({}));
        assert_eq!(kind(&fresh, None), None);
        assert_eq!(
            kind(&fresh, Some(&payload(0, json!({})))),
            Some(("not_cleared", Some(0)))
        );
        assert_eq!(
            kind(&fresh, Some(&payload(1, json!({})))),
            Some(("newer", Some(1)))
        );
    }
}
