//! What went wrong talking to a light.

use std::sync::Arc;

use super::family::Family;
use super::wled::WledError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("no BlinkStick found, nor a blink(1) or Luxafor Flag{}; plug one in, or check permissions (podlight devices)", serial_hint(.serial))]
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
    #[error("USB HID error {action}: {source}")]
    Hid {
        /// What podlight was doing, e.g. "opening /dev/hidraw0".
        action: String,
        #[source]
        source: HidFailure,
    },
    #[error("the USB HID state was poisoned by a panic; restart podlight")]
    Poisoned,
    #[error("a {} takes no {what}", .family.label())]
    Unsupported { what: &'static str, family: Family },
    #[error("WLED controller: {0}")]
    Wled(#[from] WledError),
}

/// hidapi's error, kept as the source of [`DeviceError::Hid`]: shared, because device
/// errors are cloned to every waiting caller, and compared by its message.
#[derive(Debug, Clone)]
pub struct HidFailure(pub Arc<hidapi::HidError>);

impl std::fmt::Display for HidFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HidFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for HidFailure {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for HidFailure {}

impl DeviceError {
    /// A hidapi failure while doing `action`.
    pub fn hid(action: impl Into<String>, source: hidapi::HidError) -> DeviceError {
        DeviceError::Hid {
            action: action.into(),
            source: HidFailure(Arc::new(source)),
        }
    }
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
