//! An in-process Luxafor Flag that reads exactly the bytes its firmware would (see
//! [`crate::device::luxafor`]): unnumbered 8-byte output reports (with hidraw's
//! leading 0), static colour and fade to one LED, the front or back three, or all
//! six; strobe, wave and pattern commands taken and not shown. It has no serial
//! number and no feature reports.

use std::time::Instant;

use super::emulator::EmulatedLight;
use crate::device::DeviceError;
use crate::device::family::Family;
use crate::device::luxafor::{CMD_FADE, CMD_STATIC, LED_COUNT, REPORT_SIZE, addressed};
use crate::device::transport::DeviceInfo;
use crate::frame::Rgb;

#[derive(Debug, Clone)]
pub struct LuxaforFirmware {
    /// Where it is plugged in: a Flag's only identity.
    node: String,
    leds: [Rgb; LED_COUNT],
    received: Vec<(Instant, Vec<u8>)>,
}

impl LuxaforFirmware {
    /// A Flag on this (emulated) device node.
    pub fn new(node: &str) -> LuxaforFirmware {
        LuxaforFirmware {
            node: node.to_string(),
            leds: [Rgb::OFF; LED_COUNT],
            received: Vec::new(),
        }
    }
}

impl EmulatedLight for LuxaforFirmware {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            family: Family::Luxafor,
            // No serial number: the bus names it by its node, as the HID bus does.
            serial: self.node.clone(),
            release: 0x0100,
            manufacturer: "Microchip Technology Inc.".into(),
            product: "LUXAFOR FLAG".into(),
            path: self.node.clone(),
            led_count: None,
        }
    }

    fn set_feature(&mut self, bytes: &[u8], _now: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Refused {
            id: bytes.first().copied().unwrap_or(0),
            reason: "the Luxafor Flag has no feature reports".into(),
        })
    }

    fn get_feature(&mut self, id: u8, _size: usize, _now: Instant) -> Result<Vec<u8>, DeviceError> {
        Err(DeviceError::Refused {
            id,
            reason: "the Luxafor Flag has no feature reports".into(),
        })
    }

    fn write(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError> {
        if bytes.first() != Some(&0) || bytes.len() != REPORT_SIZE {
            return Err(DeviceError::Refused {
                id: bytes.first().copied().unwrap_or(0),
                reason: format!(
                    "the Flag takes unnumbered reports: a 0, then 8 bytes ({REPORT_SIZE} in all)"
                ),
            });
        }
        self.received.push((now, bytes.to_vec()));
        if matches!(bytes[1], CMD_STATIC | CMD_FADE) {
            let colour = Rgb::new(bytes[3], bytes[4], bytes[5]);
            for &led in addressed(bytes[2]) {
                self.leds[led] = colour;
            }
        }
        Ok(())
    }

    fn leds(&self) -> Vec<Rgb> {
        self.leds.to_vec()
    }

    fn received(&self) -> &[(Instant, Vec<u8>)] {
        &self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::luxafor::{LED_BACK, frame_reports, static_colour};

    #[test]
    fn a_frame_sets_each_led_and_groups_set_three() {
        let mut fw = LuxaforFirmware::new("emulator:luxafor-1");
        let now = Instant::now();
        let leds: Vec<Rgb> = (0..6).map(|i| Rgb::new(i, 0, 0)).collect();
        for report in frame_reports(&leds) {
            fw.write(&report, now).expect("taken");
        }
        assert_eq!(fw.leds(), leds);
        fw.write(&static_colour(LED_BACK, Rgb::new(0, 0, 9)), now)
            .expect("taken");
        assert_eq!(fw.leds()[..3], [Rgb::new(0, 0, 9); 3]);
        assert_eq!(fw.leds()[3], Rgb::new(3, 0, 0));
        assert!(
            fw.write(&[1, 1, 1, 2, 3, 4, 0, 0, 0], now).is_err(),
            "numbered"
        );
        assert!(fw.set_feature(&[1, 2, 3], now).is_err());
    }
}
