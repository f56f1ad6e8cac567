//! The BlinkStick device layer. The driver: exact protocol bytes, the hidapi
//! transport, several sticks as one strip, reconnects, and a frame writer that fades
//! without ever holding up the rest of podlight. Beside it, [`sim`]: simulated sticks
//! (the firmware's emulator, a uhid stick, the terminal display) for tests, the demo
//! and machines without a stick.

mod error;
pub mod fade;
pub mod hid;
pub mod manager;
pub mod protocol;
pub mod sim;
pub mod transport;
pub mod writer;

pub use error::{DeviceError, HidFailure};

pub use fade::cap_brightness;
pub use manager::{DeviceManager, DeviceOptions, DeviceStatus, Joining, StickSpec};
pub use protocol::{Layout, Model};
pub use transport::{Bus, DeviceInfo, Transport};
pub use writer::{FrameWriter, WriterOptions};

/// The udev rule that gives the `plugdev` group access to BlinkSticks through hidraw
/// and links each under `/dev/blinkstick/` (deploy/udev, where operators take it from).
pub const UDEV_RULE: &str = include_str!("../../../deploy/udev/85-blinkstick.rules");
