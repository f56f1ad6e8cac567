//! What went wrong talking to a stick.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("no BlinkStick found{}; plug one in, or check permissions (podlight devices)", serial_hint(.serial))]
    NotFound { serial: Option<String> },
    #[error(
        "permission denied opening {path}; install the udev rule printed by `podlight devices` or run with access to the device"
    )]
    PermissionDenied { path: String },
    #[error("the stick {serial} was unplugged")]
    Gone { serial: String },
    #[error("the stick is busy (firmware clocking out LEDs)")]
    Busy,
    #[error("the stick refused report {id}: {reason}")]
    Refused { id: u8, reason: String },
    #[error(
        "cannot tell which model {serial} (release {release:#06x}) is; pass --model (original, pro, square, strip, nano, flex)"
    )]
    UnknownModel { serial: String, release: u16 },
    #[error("USB HID error: {0}")]
    Hid(String),
}

fn serial_hint(serial: &Option<String>) -> String {
    serial
        .as_ref()
        .map(|s| format!(" with serial {s}"))
        .unwrap_or_default()
}

impl DeviceError {
    /// The stick is no longer there: reconnect instead of retrying.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            DeviceError::Gone { .. } | DeviceError::NotFound { .. }
        )
    }
}
