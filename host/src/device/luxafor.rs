//! The Luxafor Flag wire protocol, from the vendor's published USB command table as
//! its open-source clients use it (e.g. the Python `luxafor` tools and
//! busylight-for-humans). Pure: no I/O.
//!
//! The Flag numbers no reports: every command is an 8-byte output report, sent with
//! a leading 0 as hidraw wants for unnumbered reports. Static colour, the one
//! command podlight uses: `{1, led, r, g, b, 0, 0, 0}` with `led` 1–6 for one LED
//! (1–3 on the back, 4–6 on the front), 0x41 the front three, 0x42 the back three,
//! 0xFF all six. Fade (2), strobe (3), wave (4) and patterns (6) run on the
//! device's own clock and are not used. The Flag has no serial number and cannot be
//! read back.

use crate::frame::Rgb;

pub const VENDOR_ID: u16 = 0x04D8;
pub const PRODUCT_ID: u16 = 0xF372;

pub const LED_COUNT: usize = 6;
/// Report ID 0 (none) + the 8-byte command.
pub const REPORT_SIZE: usize = 9;

pub const CMD_STATIC: u8 = 1;
pub const CMD_FADE: u8 = 2;
pub const LED_FRONT: u8 = 0x41;
pub const LED_BACK: u8 = 0x42;
pub const LED_ALL: u8 = 0xFF;

/// The static colour command for LED (or group) `led`.
pub fn static_colour(led: u8, c: Rgb) -> Vec<u8> {
    vec![0, CMD_STATIC, led, c.r, c.g, c.b, 0, 0, 0]
}

/// One static-colour report per LED, LED 1 first: six fixed slots, so an LED whose
/// colour did not change is not sent again.
pub fn frame_reports(leds: &[Rgb]) -> Vec<Vec<u8>> {
    (0..LED_COUNT)
        .map(|i| {
            let c = leds.get(i).copied().unwrap_or(Rgb::OFF);
            static_colour(u8::try_from(i + 1).unwrap_or(u8::MAX), c)
        })
        .collect()
}

/// The LEDs (0-based) a command's `led` byte addresses.
pub fn addressed(led: u8) -> &'static [usize] {
    match led {
        1 => &[0],
        2 => &[1],
        3 => &[2],
        4 => &[3],
        5 => &[4],
        6 => &[5],
        LED_BACK => &[0, 1, 2],
        LED_FRONT => &[3, 4, 5],
        LED_ALL => &[0, 1, 2, 3, 4, 5],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_static_reports_byte_exact() {
        let reports = frame_reports(&[Rgb::new(1, 2, 3)]);
        assert_eq!(reports.len(), 6);
        assert_eq!(reports[0], [0, 1, 1, 1, 2, 3, 0, 0, 0]);
        assert_eq!(reports[5], [0, 1, 6, 0, 0, 0, 0, 0, 0], "missing LEDs off");
        assert!(reports.iter().all(|r| r.len() == REPORT_SIZE));
    }

    #[test]
    fn groups_address_their_leds() {
        assert_eq!(addressed(LED_ALL).len(), 6);
        assert_eq!(addressed(LED_FRONT), &[3, 4, 5]);
        assert_eq!(addressed(0), &[] as &[usize]);
        assert_eq!(addressed(7), &[] as &[usize]);
    }
}
