//! A device's lifecycle status.

use crate::text_enum::text_enum;

text_enum!(
    /// Whether a device takes desired writes (`device_state.status`).
    DeviceStatus {
        /// Takes desired writes.
        Active = "active",
        /// Takes none; its retained desired message is cleared.
        Decommissioned = "decommissioned",
    }
);
