//! The blink(1) wire protocol (ThingM, mk1/mk2/mk3), from the vendor's published
//! HID command list (todbot/blink1, docs/blink1-hid-commands.md) and its C library
//! (blink1-lib). Pure: no I/O.
//!
//! Every command is one feature report, ID 1, eight bytes after the ID:
//! `{1, cmd, a, b, c, d, e, f}`. podlight uses three:
//! - `'c'` fade to RGB: `{1, 'c', r, g, b, th, tl, n}` — fade time in 10 ms units
//!   (big-endian), LED `n` (0 all, 1 top, 2 bottom; mk1 ignores `n` and has one LED);
//! - `'r'` read the colour of LED `n`: `{1, 'r', 0, 0, 0, 0, 0, n}`, then a GET of
//!   report 1 answers `{1, 'r', r, g, b, …}`;
//! - `'v'` version: answered `{1, 'v', 0, major, minor, …}` (ASCII digits).
//!
//! The serial is eight hex digits; its first digit is the generation (1: mk1, one
//! LED; 2: mk2 and 3: mk3, two LEDs).

use crate::frame::Rgb;

pub const VENDOR_ID: u16 = 0x27B8;
pub const PRODUCT_ID: u16 = 0x01ED;

pub const REPORT_ID: u8 = 1;
/// Report ID included.
pub const REPORT_SIZE: usize = 9;

pub const CMD_FADE: u8 = b'c';
pub const CMD_SET_NOW: u8 = b'n';
pub const CMD_READ: u8 = b'r';
pub const CMD_VERSION: u8 = b'v';

/// LEDs of a two-LED blink(1).
pub const MAX_LEDS: usize = 2;

/// The generation from the serial's first hex digit (mk1 = 1, mk2 = 2, mk3 = 3).
pub fn generation(serial: &str) -> Option<u8> {
    let digit = serial.chars().next()?.to_digit(16)?;
    u8::try_from(digit).ok().filter(|g| (1..=3).contains(g))
}

/// How a blink(1) is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub led_count: usize,
    /// mk1: one LED, and `n` in a command means nothing to it.
    pub addressable: bool,
}

impl Layout {
    /// The layout for a device with this serial; `led_count` overrides (1 or 2).
    pub fn for_serial(serial: &str, led_count: Option<usize>) -> Layout {
        let addressable = generation(serial).is_none_or(|g| g >= 2);
        let max = if addressable { MAX_LEDS } else { 1 };
        Layout {
            led_count: led_count.unwrap_or(max).clamp(1, max),
            addressable,
        }
    }

    /// One fade report per LED, with fade time 0 (podlight fades on its own thread,
    /// so every step is shown as sent). A one-LED layout addresses "all" (n = 0):
    /// what mk1 understands.
    pub fn frame_reports(&self, leds: &[Rgb]) -> Vec<Vec<u8>> {
        let led = |i: usize| leds.get(i).copied().unwrap_or(Rgb::OFF);
        if !self.addressable || self.led_count == 1 {
            return vec![fade_now(led(0), 0)];
        }
        (0..self.led_count)
            .map(|i| fade_now(led(i), u8::try_from(i + 1).unwrap_or(u8::MAX)))
            .collect()
    }

    /// The request that makes the next GET of report 1 answer LED `index`'s colour.
    pub fn read_request(&self, index: usize) -> Vec<u8> {
        let n = if self.addressable && self.led_count > 1 {
            u8::try_from(index + 1).unwrap_or(u8::MAX)
        } else {
            0
        };
        vec![REPORT_ID, CMD_READ, 0, 0, 0, 0, 0, n, 0]
    }
}

/// `'c'` with fade time 0 for LED `n`.
pub fn fade_now(c: Rgb, n: u8) -> Vec<u8> {
    vec![REPORT_ID, CMD_FADE, c.r, c.g, c.b, 0, 0, n, 0]
}

/// The colour in an answer to `'r'`, if it is one.
pub fn decode_read(report: &[u8]) -> Option<Rgb> {
    match report {
        [REPORT_ID, CMD_READ, r, g, b, ..] if report.len() == REPORT_SIZE => {
            Some(Rgb::new(*r, *g, *b))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leds_get_one_fade_report_each_byte_exact() {
        let layout = Layout::for_serial("2000abcd", None);
        assert_eq!(layout.led_count, 2);
        let reports = layout.frame_reports(&[Rgb::new(1, 2, 3), Rgb::new(4, 5, 6)]);
        assert_eq!(
            reports,
            vec![
                vec![1, b'c', 1, 2, 3, 0, 0, 1, 0],
                vec![1, b'c', 4, 5, 6, 0, 0, 2, 0]
            ]
        );
    }

    #[test]
    fn mk1_has_one_led_addressed_as_all() {
        let layout = Layout::for_serial("1000beef", Some(2));
        assert_eq!(layout.led_count, 1, "an override cannot add LEDs");
        assert_eq!(
            layout.frame_reports(&[Rgb::new(9, 8, 7), Rgb::new(1, 1, 1)]),
            vec![vec![1, b'c', 9, 8, 7, 0, 0, 0, 0]]
        );
        assert_eq!(layout.read_request(0)[7], 0);
    }

    #[test]
    fn read_answers_decode_only_when_they_are_answers() {
        assert_eq!(
            decode_read(&[1, b'r', 10, 20, 30, 0, 0, 1, 0]),
            Some(Rgb::new(10, 20, 30))
        );
        assert_eq!(decode_read(&[1, b'v', 10, 20, 30, 0, 0, 1, 0]), None);
        assert_eq!(decode_read(&[1, b'r', 10]), None);
        assert_eq!(generation("3000cafe"), Some(3));
        assert_eq!(generation("zz"), None);
        assert_eq!(generation("9000cafe"), None);
    }
}
