//! The device layer. The driver: one [`family`] abstraction over every kind of
//! light — BlinkStick (the reference, [`protocol`]), [`blink1`], [`luxafor`] on USB
//! HID, [`wled`] controllers over the network — the hidapi transport, several lights
//! as one strip, reconnects, and a frame writer that fades without ever holding up
//! the rest of podlight. Beside it, [`sim`]: simulated lights (the firmwares'
//! emulators, a uhid stick, a WLED controller on loopback, the terminal display) for
//! tests, the demo and machines without a light.

pub mod blink1;
mod error;
pub mod fade;
pub mod family;
pub mod hid;
pub mod luxafor;
pub mod manager;
pub mod protocol;
pub mod sim;
pub mod transport;
pub mod wled;
pub mod writer;

pub use error::{DeviceError, HidFailure};
pub use family::{DeviceLayout, Family};

pub use fade::cap_brightness;
pub use manager::{DeviceManager, DeviceOptions, DeviceStatus, Joining, StickSpec};
pub use protocol::{Layout, Model};
pub use transport::{Bus, DeviceInfo, Transport};
pub use writer::{FrameWriter, WriterOptions};

/// The udev rule that gives the `plugdev` group access to BlinkSticks through hidraw
/// and links each under `/dev/blinkstick/` (deploy/udev, where operators take it from).
pub const UDEV_RULE: &str = include_str!("../../../deploy/udev/85-blinkstick.rules");
