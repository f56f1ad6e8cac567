//! An in-process blink(1) that reads exactly the bytes its firmware would (see
//! [`crate::device::blink1`]): feature report 1 of 9 bytes, `'c'` fade and `'n'` set
//! now with the LED number (ignored by mk1, which has one LED), `'r'` read-back
//! answered on the next GET, `'v'` version. Commands it does not know are taken and
//! ignored, as the firmware does.

use std::time::Instant;

use super::emulator::EmulatedLight;
use crate::device::DeviceError;
use crate::device::blink1::{
    CMD_FADE, CMD_READ, CMD_SET_NOW, CMD_VERSION, MAX_LEDS, REPORT_ID, REPORT_SIZE, generation,
};
use crate::device::family::Family;
use crate::device::transport::DeviceInfo;
use crate::frame::Rgb;

#[derive(Debug, Clone)]
pub struct Blink1Firmware {
    serial: String,
    leds: [Rgb; MAX_LEDS],
    /// What the next GET of report 1 answers.
    answer: [u8; REPORT_SIZE],
    received: Vec<(Instant, Vec<u8>)>,
}

impl Blink1Firmware {
    /// A blink(1) with this serial: `1…` is an mk1 (one LED), `2…`/`3…` mk2/mk3.
    pub fn new(serial: &str) -> Blink1Firmware {
        Blink1Firmware {
            serial: serial.to_string(),
            leds: [Rgb::OFF; MAX_LEDS],
            answer: [0; REPORT_SIZE],
            received: Vec::new(),
        }
    }

    fn mk1(&self) -> bool {
        generation(&self.serial) == Some(1)
    }

    fn set(&mut self, n: u8, c: Rgb) {
        match n {
            _ if self.mk1() => self.leds[0] = c,
            0 => self.leds = [c; MAX_LEDS],
            1 | 2 => self.leds[usize::from(n - 1)] = c,
            _ => {}
        }
    }
}

impl EmulatedLight for Blink1Firmware {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            family: Family::Blink1,
            serial: self.serial.clone(),
            release: 0x0002,
            manufacturer: "ThingM".into(),
            product: "blink(1) mk3".into(),
            path: format!("emulator:{}", self.serial),
            led_count: None,
        }
    }

    fn set_feature(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError> {
        if bytes.first() != Some(&REPORT_ID) || bytes.len() != REPORT_SIZE {
            return Err(DeviceError::Refused {
                id: bytes.first().copied().unwrap_or(0),
                reason: format!("blink(1) takes report 1 of {REPORT_SIZE} bytes"),
            });
        }
        self.received.push((now, bytes.to_vec()));
        let colour = Rgb::new(bytes[2], bytes[3], bytes[4]);
        let n = bytes[7];
        match bytes[1] {
            // Fade time is ignored: the emulator shows where every fade ends.
            CMD_FADE | CMD_SET_NOW => self.set(n, colour),
            CMD_READ => {
                let index = if self.mk1() || n == 0 {
                    0
                } else {
                    usize::from(n - 1).min(MAX_LEDS - 1)
                };
                let c = self.leds[index];
                self.answer = [REPORT_ID, CMD_READ, c.r, c.g, c.b, 0, 0, n, 0];
            }
            CMD_VERSION => self.answer = [REPORT_ID, CMD_VERSION, 0, b'3', b'0', 0, 0, 0, 0],
            _ => {}
        }
        Ok(())
    }

    fn get_feature(&mut self, id: u8, size: usize, _now: Instant) -> Result<Vec<u8>, DeviceError> {
        if id != REPORT_ID || size != REPORT_SIZE {
            return Err(DeviceError::Refused {
                id,
                reason: format!("blink(1) answers report 1 of {REPORT_SIZE} bytes"),
            });
        }
        Ok(self.answer.to_vec())
    }

    fn write(&mut self, bytes: &[u8], _now: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Refused {
            id: bytes.first().copied().unwrap_or(0),
            reason: "blink(1) takes feature reports only".into(),
        })
    }

    fn leds(&self) -> Vec<Rgb> {
        if self.mk1() {
            vec![self.leds[0]]
        } else {
            self.leds.to_vec()
        }
    }

    fn received(&self) -> &[(Instant, Vec<u8>)] {
        &self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::blink1::{Layout, decode_read};

    #[test]
    fn a_frame_and_its_read_back_round_trip() {
        let mut fw = Blink1Firmware::new("3000cafe");
        let layout = Layout::for_serial("3000cafe", None);
        let now = Instant::now();
        let leds = [Rgb::new(1, 2, 3), Rgb::new(4, 5, 6)];
        for report in layout.frame_reports(&leds) {
            fw.set_feature(&report, now).expect("taken");
        }
        assert_eq!(fw.leds(), leds.to_vec());
        for (i, want) in leds.iter().enumerate() {
            fw.set_feature(&layout.read_request(i), now).expect("read");
            let answer = fw.get_feature(1, 9, now).expect("answer");
            assert_eq!(decode_read(&answer), Some(*want));
        }
        assert!(
            fw.set_feature(&[1, b'c', 1, 2, 3], now).is_err(),
            "short report"
        );
        assert!(
            fw.get_feature(2, 9, now).is_err(),
            "report 2 is not emulated"
        );
    }

    #[test]
    fn mk1_lets_a_second_led_command_overwrite_its_only_led() {
        let mut fw = Blink1Firmware::new("1000beef");
        let now = Instant::now();
        fw.set_feature(&[1, b'c', 9, 9, 9, 0, 0, 1, 0], now)
            .expect("taken");
        fw.set_feature(&[1, b'c', 1, 1, 1, 0, 0, 2, 0], now)
            .expect("taken");
        assert_eq!(fw.leds(), vec![Rgb::new(1, 1, 1)]);
    }
}
