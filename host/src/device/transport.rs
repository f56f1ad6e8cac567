//! How podlight reaches lights: a [`Bus`] lists and opens them, a [`Transport`]
//! moves reports (or datagrams). hidapi, the emulators, the VM's uhid stick and a
//! WLED controller's socket all sit behind these two traits.

use std::time::Duration;

use super::DeviceError;
use super::family::Family;

/// What a light says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub family: Family,
    /// Its identity: the USB serial number; for a light without one (the Luxafor
    /// Flag) its device node; for WLED its MAC address.
    pub serial: String,
    /// bcdDevice; 0 when the bus does not know it (uhid).
    pub release: u16,
    pub manufacturer: String,
    pub product: String,
    /// The OS path (e.g. /dev/hidraw0) or network address, for people.
    pub path: String,
    /// LEDs, when the light says (WLED); USB lights tell by their model.
    pub led_count: Option<usize>,
}

/// A way to find and open lights.
pub trait Bus: Send + Sync {
    /// Every light present now (on USB: every family's vendor and product IDs).
    fn list(&self) -> Result<Vec<DeviceInfo>, DeviceError>;
    /// Opens the light with this serial (identity).
    fn open(&self, serial: &str) -> Result<Box<dyn Transport>, DeviceError>;
    /// Longest pause between two attempts to reach a missing light: short on USB (a
    /// replugged stick is back within a second), longer over a network, where each
    /// attempt waits for an answer.
    fn max_backoff(&self) -> Duration {
        Duration::from_millis(400)
    }
}

/// An open light.
pub trait Transport: Send {
    /// Sends a feature report; `report[0]` is its ID.
    fn set_feature(&mut self, report: &[u8]) -> Result<(), DeviceError>;
    /// Reads feature report `id` of `size` bytes (ID included).
    fn get_feature(&mut self, id: u8, size: usize) -> Result<Vec<u8>, DeviceError>;
    /// Sends an output report (`report[0]` its ID, 0 where the device numbers none)
    /// or, to a network light, a datagram.
    fn write(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::Refused {
            id: report.first().copied().unwrap_or(0),
            reason: "this light takes no output reports".into(),
        })
    }
    /// False once the stick is gone, even if nothing was sent to it since: a stick
    /// pulled out while the frame holds still must be noticed to be re-sent the frame
    /// when it is back. Moves no report.
    fn is_connected(&mut self) -> bool;
}

/// The firmware stops answering for a moment after a frame write while it clocks
/// data out to the LEDs; a failed write is retried this many times…
pub(crate) const WRITE_TRIES: u32 = 5;
/// …waiting this long before the first retry and twice as long each time after.
pub(crate) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(2);

/// Sends a report, retrying through the firmware's busy window. A stick that is
/// gone fails at once.
pub fn set_feature_with_retry(
    transport: &mut dyn Transport,
    report: &[u8],
) -> Result<u32, DeviceError> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut tries = 1;
    loop {
        match transport.set_feature(report) {
            Ok(()) => return Ok(tries),
            Err(e) if e.is_gone() || tries >= WRITE_TRIES => return Err(e),
            Err(_) => {
                std::thread::sleep(delay);
                delay *= 2;
                tries += 1;
            }
        }
    }
}
