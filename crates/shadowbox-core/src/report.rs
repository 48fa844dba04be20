//! What became of a device's report, as the database write decides it
//! (under the rules of [`crate::staleness`] and the `ahead` rule) and the
//! ingester counts it: one name each in SQL, in the code and as a metric
//! label.

use crate::text_enum::text_enum;

text_enum!(
    /// What became of a report's reported state (or of the whole report,
    /// for an unknown or decommissioned device).
    ReportedOutcome {
        /// Stored; `last_seen` updated.
        Applied = "applied",
        /// Older than the stored version: dropped, only `last_seen` updated.
        Stale = "stale",
        /// Newer than the device's desired version: refused, only
        /// `last_seen` updated.
        Ahead = "ahead",
        /// The report carried no reported state (only a rejection);
        /// `last_seen` updated.
        NoReport = "rejection",
        /// No such tenant or device.
        Unknown = "unknown",
        /// The device is decommissioned: dropped.
        Decommissioned = "decommissioned",
    }
);

impl ReportedOutcome {
    /// Whether the device is known and active (its update was written).
    pub fn device_active(self) -> bool {
        !matches!(self, Self::Unknown | Self::Decommissioned)
    }
}

text_enum!(
    /// What became of a report's rejection.
    RejectionOutcome {
        /// Stored on the device: it refuses its current desired version.
        Recorded = "recorded",
        /// Of a version that is not the current desired version, of one the
        /// device reports applied, or of an unknown or decommissioned device.
        Ignored = "ignored",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_other_than_the_variant_s_is_the_one_spelled_everywhere() {
        let no_report = ReportedOutcome::NoReport;
        assert_eq!(no_report.as_str(), "rejection");
        assert_eq!(serde_json::to_string(&no_report).unwrap(), "\"rejection\"");
        assert_eq!("rejection".parse(), Ok(no_report));
    }
}
