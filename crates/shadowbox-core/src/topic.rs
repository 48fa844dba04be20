//! MQTT topics of the contract: `tenant/{tenant_id}/device/{device_id}/shadow/{desired|reported}`.

use crate::{DeviceId, IdError, TenantId};

/// The topic filter matching every device's reported topic.
pub const REPORTED_FILTER: &str = "tenant/+/device/+/shadow/reported";

/// Which shadow topic of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowTopicKind {
    /// Written by shadowbox (retained), read by the device.
    Desired,
    /// Written by the device, read by shadowbox.
    Reported,
}

impl ShadowTopicKind {
    fn suffix(self) -> &'static str {
        match self {
            Self::Desired => "desired",
            Self::Reported => "reported",
        }
    }
}

/// The topic of one device's desired or reported shadow.
pub fn shadow_topic(tenant: &TenantId, device: &DeviceId, kind: ShadowTopicKind) -> String {
    format!("tenant/{tenant}/device/{device}/shadow/{}", kind.suffix())
}

/// The topic filter matching the desired topic of every device of `tenant`.
pub fn tenant_desired_filter(tenant: &TenantId) -> String {
    format!("tenant/{tenant}/device/+/shadow/desired")
}

/// The MQTT 5 shared-subscription filter through which a group of ingesters
/// splits the reported traffic.
pub fn shared_reported_filter(group: &str) -> String {
    format!("$share/{group}/{REPORTED_FILTER}")
}

/// Why a topic is not a shadow topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The levels do not match `tenant/+/device/+/shadow/(desired|reported)`.
    #[error("not a shadow topic")]
    Shape,
    /// The tenant level is not a valid identifier.
    #[error("invalid tenant id: {0}")]
    Tenant(IdError),
    /// The device level is not a valid identifier.
    #[error("invalid device id: {0}")]
    Device(IdError),
}

/// Parses a shadow topic into its tenant, device and kind.
pub fn parse_shadow_topic(
    topic: &str,
) -> Result<(TenantId, DeviceId, ShadowTopicKind), TopicError> {
    let mut levels = topic.split('/');
    let mut next = || levels.next().ok_or(TopicError::Shape);
    let (l0, tenant, l2, device, l4, kind) = (next()?, next()?, next()?, next()?, next()?, next()?);
    if levels.next().is_some() || l0 != "tenant" || l2 != "device" || l4 != "shadow" {
        return Err(TopicError::Shape);
    }
    let kind = match kind {
        "desired" => ShadowTopicKind::Desired,
        "reported" => ShadowTopicKind::Reported,
        _ => return Err(TopicError::Shape),
    };
    Ok((
        TenantId::parse(tenant).map_err(TopicError::Tenant)?,
        DeviceId::parse(device).map_err(TopicError::Device)?,
        kind,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse_round_trip() {
        let t = TenantId::parse("acme").unwrap();
        let d = DeviceId::parse("pump-7").unwrap();
        for kind in [ShadowTopicKind::Desired, ShadowTopicKind::Reported] {
            let topic = shadow_topic(&t, &d, kind);
            assert_eq!(
                parse_shadow_topic(&topic).unwrap(),
                (t.clone(), d.clone(), kind)
            );
        }
        assert_eq!(
            shadow_topic(&t, &d, ShadowTopicKind::Desired),
            "tenant/acme/device/pump-7/shadow/desired"
        );
    }

    #[test]
    fn rejects_other_shapes() {
        for topic in [
            "",
            "tenant/acme/device/pump/shadow",
            "tenant/acme/device/pump/shadow/reported/x",
            "tenants/acme/device/pump/shadow/reported",
            "tenant/acme/dev/pump/shadow/reported",
            "tenant/acme/device/pump/shadow/delta",
        ] {
            assert_eq!(
                parse_shadow_topic(topic),
                Err(TopicError::Shape),
                "{topic:?}"
            );
        }
        assert!(matches!(
            parse_shadow_topic("tenant//device/pump/shadow/reported"),
            Err(TopicError::Tenant(IdError::Empty))
        ));
        assert!(matches!(
            parse_shadow_topic("tenant/acme/device/p u/shadow/reported"),
            Err(TopicError::Device(IdError::BadChar(' ')))
        ));
    }

    #[test]
    fn a_tenant_s_desired_filter_matches_its_devices_only() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(
            tenant_desired_filter(&t),
            "tenant/acme/device/+/shadow/desired"
        );
    }

    #[test]
    fn shared_filter() {
        assert_eq!(
            shared_reported_filter("shadowbox"),
            "$share/shadowbox/tenant/+/device/+/shadow/reported"
        );
    }
}
