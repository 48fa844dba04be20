//! What a PUBACK's reason code means for the publish it answers.
//!
//! Under MQTT 5 a broker says why it did not take a publish; under 3.1.1
//! every PUBACK is a success (and a broker whose ACL refuses a publish,
//! Mosquitto for one, still sends it, so a refusal passes for a delivery).

use std::fmt;

/// A PUBACK reason code (MQTT 5, section 3.4.2.1); always success under
/// 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonCode(pub u8);

/// What a publish's PUBACK says became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The broker took it (0x00 success, 0x10 no matching subscribers: the
    /// retained message is stored all the same).
    Accepted,
    /// The broker refused it and would refuse it again (not authorized,
    /// topic invalid, ...): the refused-publish path.
    Refused,
    /// The broker could not take it now (0x89 server busy, 0x97 quota
    /// exceeded): retry later, like an outage, never dead-letter.
    Transient,
}

impl ReasonCode {
    /// 0x00.
    pub const SUCCESS: Self = Self(0x00);

    /// What the code means for the publish.
    pub fn verdict(self) -> Verdict {
        match self.0 {
            0x89 | 0x97 => Verdict::Transient,
            code if code >= 0x80 => Verdict::Refused,
            _ => Verdict::Accepted,
        }
    }

    /// The code's name in the MQTT 5 specification, in lower case.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "success",
            0x10 => "no matching subscribers",
            0x80 => "unspecified error",
            0x83 => "implementation specific error",
            0x87 => "not authorized",
            0x89 => "server busy",
            0x90 => "topic name invalid",
            0x91 => "packet identifier in use",
            0x95 => "packet too large",
            0x97 => "quota exceeded",
            0x99 => "payload format invalid",
            _ => "unknown reason code",
        }
    }
}

/// `0x87 not authorized`: what `last_error` records.
impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} {}", self.0, self.name())
    }
}

impl From<rumqttc::v5::mqttbytes::v5::PubAckReason> for ReasonCode {
    fn from(reason: rumqttc::v5::mqttbytes::v5::PubAckReason) -> Self {
        use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
        Self(match reason {
            R::Success => 0x00,
            R::NoMatchingSubscribers => 0x10,
            R::UnspecifiedError => 0x80,
            R::ImplementationSpecificError => 0x83,
            R::NotAuthorized => 0x87,
            R::TopicNameInvalid => 0x90,
            R::PacketIdentifierInUse => 0x91,
            R::QuotaExceeded => 0x97,
            R::PayloadFormatInvalid => 0x99,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_s_reason_codes() {
        for accepted in [0x00, 0x10] {
            assert_eq!(ReasonCode(accepted).verdict(), Verdict::Accepted);
        }
        for refused in [0x80, 0x83, 0x87, 0x90, 0x95, 0x99] {
            assert_eq!(
                ReasonCode(refused).verdict(),
                Verdict::Refused,
                "{refused:#x}"
            );
        }
        for transient in [0x89, 0x97] {
            assert_eq!(ReasonCode(transient).verdict(), Verdict::Transient);
        }
        assert_eq!(ReasonCode(0x87).to_string(), "0x87 not authorized");
    }
}
