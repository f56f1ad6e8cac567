//! How podlight reaches sticks: a [`Bus`] lists and opens them, a [`Transport`]
//! moves feature reports. hidapi, the emulator and the VM's uhid stick all sit
//! behind these two traits.

use std::time::Duration;

use super::DeviceError;

/// What a stick says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeviceInfo {
    pub serial: String,
    /// bcdDevice; 0 when the bus does not know it (uhid).
    pub release: u16,
    pub manufacturer: String,
    pub product: String,
    /// The OS path (e.g. /dev/hidraw0), for people.
    pub path: String,
}

/// A way to find and open sticks.
pub trait Bus: Send + Sync {
    /// Every BlinkStick present now (vendor 0x20A0, product 0x41E5).
    fn list(&self) -> Result<Vec<DeviceInfo>, DeviceError>;
    /// Opens the stick with this serial.
    fn open(&self, serial: &str) -> Result<Box<dyn Transport>, DeviceError>;
}

/// An open stick.
pub trait Transport: Send {
    /// Sends a feature report; `report[0]` is its ID.
    fn set_feature(&mut self, report: &[u8]) -> Result<(), DeviceError>;
    /// Reads feature report `id` of `size` bytes (ID included).
    fn get_feature(&mut self, id: u8, size: usize) -> Result<Vec<u8>, DeviceError>;
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
