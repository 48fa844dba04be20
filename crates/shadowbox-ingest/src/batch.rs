//! Turns a batch of raw messages into at most one update per device, and
//! says what becomes of every message. Pure: no I/O.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use shadowbox_core::payload::{ReportedError, decode_reported};
use shadowbox_core::topic::{ShadowTopicKind, TopicError, parse_shadow_topic};
use shadowbox_core::{DeviceId, DocumentLimits, TenantId, staleness};
use shadowbox_db::reported::{ReceivedRejection, ReportedState, ReportedUpdate};

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
    /// Part of `updates[slot]`, its device's update.
    Valid {
        /// The device's update.
        slot: usize,
        /// What becomes of the message's reported state.
        report: Part,
        /// What becomes of the message's rejection.
        rejection: Part,
    },
}

/// What becomes of one part (reported state or rejection) of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The message has none.
    Absent,
    /// It is the one its device's update carries.
    Winner,
    /// A part of the same device in this batch replaced it: a higher
    /// version, or the same version received later.
    Superseded,
}

/// A batch ready to write.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// At most one update per device: the winner of its reported states and
    /// the winner of its rejections.
    pub updates: Vec<ReportedUpdate>,
    /// One verdict per message, in receive order.
    pub verdicts: Vec<Verdict>,
}

/// Per device: its update's index, and the messages owning its reported
/// state and its rejection.
struct Owners {
    slot: usize,
    report: Option<usize>,
    rejection: Option<usize>,
}

/// Decodes `messages` (topic, payload, arrival, in receive order),
/// validates them against `limits` and keeps per device the reported state
/// that wins by the staleness rule (`shadowbox_core::staleness`: the
/// highest version, and among equal versions the latest received) and,
/// separately, the rejection that wins (the same way).
///
/// A winner whose version the database then finds `ahead` is refused with
/// the losers it beat: a device that sends versions it was never given
/// loses that batch's reports.
pub(crate) fn plan<'a>(
    messages: impl IntoIterator<Item = (&'a str, &'a [u8], DateTime<Utc>)>,
    limits: &DocumentLimits,
) -> Plan {
    let mut plan = Plan::default();
    let mut owners: HashMap<(TenantId, DeviceId), Owners> = HashMap::new();
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
        let key = (tenant, device);
        let owner = owners.entry(key).or_insert_with_key(|(tenant, device)| {
            plan.updates.push(ReportedUpdate {
                tenant_id: tenant.clone(),
                device_id: device.clone(),
                reported: None,
                rejection: None,
                seen_at: received_at,
            });
            Owners {
                slot: plan.updates.len() - 1,
                report: None,
                rejection: None,
            }
        });
        let update = &mut plan.updates[owner.slot];
        update.seen_at = update.seen_at.max(received_at);
        let report = match message.reported {
            None => Part::Absent,
            Some(document) => {
                let state = ReportedState {
                    document,
                    version: message.version,
                    received_at,
                };
                let current = update.reported.as_ref().map(|r| r.version);
                if current.is_none_or(|v| staleness::replaces(state.version, v)) {
                    update.reported = Some(state);
                    if let Some(Verdict::Valid { report, .. }) =
                        owner.report.replace(index).map(|i| &mut plan.verdicts[i])
                    {
                        *report = Part::Superseded;
                    }
                    Part::Winner
                } else {
                    Part::Superseded
                }
            }
        };
        let update = &mut plan.updates[owner.slot];
        let rejection = match message.rejected {
            None => Part::Absent,
            Some(rejection) => {
                let current = update.rejection.as_ref().map(|r| r.rejection.version);
                if current.is_none_or(|v| staleness::replaces(rejection.version, v)) {
                    update.rejection = Some(ReceivedRejection {
                        rejection,
                        received_at,
                    });
                    if let Some(Verdict::Valid { rejection, .. }) = owner
                        .rejection
                        .replace(index)
                        .map(|i| &mut plan.verdicts[i])
                    {
                        *rejection = Part::Superseded;
                    }
                    Part::Winner
                } else {
                    Part::Superseded
                }
            }
        };
        plan.verdicts.push(Verdict::Valid {
            slot: owner.slot,
            report,
            rejection,
        });
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
        let a_state = a.reported.as_ref().unwrap();
        assert_eq!((a.device_id.as_str(), a_state.version), ("a", 5));
        assert_eq!(a_state.document["n"], 5);
        assert_eq!(plan.updates[1].reported.as_ref().unwrap().document["n"], 4);
        assert_eq!(
            shape(&plan),
            [
                "0 Superseded Absent",
                "1 Superseded Absent",
                "0 Superseded Absent",
                "1 Winner Absent",
                "0 Winner Absent"
            ]
        );
    }

    #[test]
    fn reported_state_and_rejection_win_separately() {
        let plan = run(&[
            (
                A,
                r#"{"reported": {"n": 1}, "version": 2, "rejected": {"version": 3, "reason": "first"}}"#,
            ),
            (A, r#"{"reported": {"n": 2}, "version": 1}"#),
            (A, r#"{"rejected": {"version": 3, "reason": "second"}}"#),
            (A, r#"{"rejected": {"version": 2, "reason": "older"}}"#),
        ]);
        assert_eq!(plan.updates.len(), 1);
        let a = &plan.updates[0];
        assert_eq!(a.reported.as_ref().unwrap().document["n"], 1);
        assert_eq!(a.rejection.as_ref().unwrap().rejection.reason, "second");
        assert_eq!(
            shape(&plan),
            [
                "0 Winner Superseded",
                "0 Superseded Absent",
                "0 Absent Winner",
                "0 Absent Superseded"
            ]
        );
    }

    /// `"<slot> <report> <rejection>"` per valid message.
    fn shape(plan: &Plan) -> Vec<String> {
        plan.verdicts
            .iter()
            .map(|v| match v {
                Verdict::Valid {
                    slot,
                    report,
                    rejection,
                } => format!("{slot} {report:?} {rejection:?}"),
                Verdict::Invalid(invalid) => panic!("{invalid}"),
            })
            .collect()
    }

    #[test]
    fn invalid_messages_are_refused_with_a_reason() {
        let plan = run(&[
            ("tenant/t/device/a b/shadow/reported", r#"{"reported": {}}"#),
            ("tenant/t/device/a/shadow/desired", r#"{"reported": {}}"#),
            (A, "{"),
            (A, r#"{"reported": 1}"#),
            (A, r#"{"reported": {}, "version": -2}"#),
            (A, r#"{"rejected": {"version": 2}}"#),
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
                "bad_version",
                "bad_rejection"
            ]
        );
    }
}
