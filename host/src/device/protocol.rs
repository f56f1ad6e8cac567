//! The BlinkStick wire protocol: models, feature reports and their exact bytes.
//! Pure: no I/O. Byte 0 of every report is its ID and counts in its size.

use crate::frame::Rgb;

pub const VENDOR_ID: u16 = 0x20A0;
pub const PRODUCT_ID: u16 = 0x41E5;

/// Report IDs.
pub const REPORT_COLOR: u8 = 1;
pub const REPORT_INFO_1: u8 = 2;
pub const REPORT_INFO_2: u8 = 3;
pub const REPORT_MODE: u8 = 4;
pub const REPORT_INDEXED: u8 = 5;
pub const REPORT_FLEX_COUNT: u8 = 0x81;
/// Frame reports 6..=9 and how many LEDs each carries.
pub const FRAME_REPORTS: [(u8, usize); 4] = [(6, 8), (7, 16), (8, 32), (9, 64)];

/// Size in bytes, report ID included, of a report; none for an unknown ID.
pub fn report_size(id: u8) -> Option<usize> {
    match id {
        REPORT_COLOR => Some(4),
        REPORT_INFO_1 | REPORT_INFO_2 => Some(33),
        REPORT_MODE => Some(2),
        REPORT_INDEXED => Some(6),
        REPORT_FLEX_COUNT => Some(2),
        _ => FRAME_REPORTS
            .iter()
            .find(|(rid, _)| *rid == id)
            .map(|(_, leds)| 2 + 3 * leds),
    }
}

/// Pro (mode 2) LEDs per channel; a Pro has three channels.
pub const PRO_CHANNEL_LEDS: usize = 64;
pub const PRO_CHANNELS: usize = 3;

/// Pro modes (report 4).
pub const MODE_NORMAL: u8 = 0;
pub const MODE_WS2812: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// The original BlinkStick (v1): one LED, reports 1–3 only.
    Original,
    /// BlinkStick Pro: one RGB LED in modes 0/1, up to 64 WS2812 per channel on
    /// three channels in mode 2.
    Pro,
    Square,
    Strip,
    Nano,
    Flex,
}

impl Model {
    pub const ALL: [Model; 6] = [
        Model::Original,
        Model::Pro,
        Model::Square,
        Model::Strip,
        Model::Nano,
        Model::Flex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Original => "original",
            Model::Pro => "pro",
            Model::Square => "square",
            Model::Strip => "strip",
            Model::Nano => "nano",
            Model::Flex => "flex",
        }
    }

    pub fn parse(text: &str) -> Result<Model, String> {
        Model::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!(
                    "unknown model {text:?}: use one of original, pro, square, strip, nano, flex"
                )
            })
    }

    /// LEDs a stick of this model has unless told otherwise.
    pub fn default_led_count(self) -> usize {
        match self {
            Model::Original | Model::Pro => 1,
            Model::Square | Model::Strip => 8,
            Model::Nano => 2,
            Model::Flex => 32,
        }
    }

    /// The most LEDs the model can drive.
    pub fn max_led_count(self) -> usize {
        match self {
            Model::Original => 1,
            Model::Pro => PRO_CHANNEL_LEDS * PRO_CHANNELS,
            Model::Square | Model::Strip => 8,
            Model::Nano => 2,
            Model::Flex => 32,
        }
    }

    /// The bcdDevice release number a stick of this model reports (v3 boards).
    pub fn release(self) -> u16 {
        match self {
            Model::Original => 0x0103,
            Model::Pro => 0x0200,
            Model::Square => 0x0200,
            Model::Strip => 0x0201,
            Model::Nano => 0x0202,
            Model::Flex => 0x0203,
        }
    }

    /// The hardware generation digit in its serial (`BSnnnnnn-M.m`).
    pub fn generation(self) -> u8 {
        match self {
            Model::Original => 1,
            Model::Pro => 2,
            _ => 3,
        }
    }
}

/// The major digit of a serial `BSnnnnnn-M.m`.
pub fn serial_generation(serial: &str) -> Option<u8> {
    let (_, version) = serial.rsplit_once('-')?;
    let major = version.split('.').next()?;
    major.parse().ok()
}

/// The model from the serial's generation digit, then the release number.
pub fn detect_model(serial: &str, release: u16) -> Option<Model> {
    match serial_generation(serial)? {
        1 => Some(Model::Original),
        2 => Some(Model::Pro),
        3 => match release {
            0x0200 => Some(Model::Square),
            0x0201 => Some(Model::Strip),
            0x0202 => Some(Model::Nano),
            0x0203 => Some(Model::Flex),
            _ => None,
        },
        _ => None,
    }
}

/// A model and how many LEDs to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub model: Model,
    pub led_count: usize,
}

impl Layout {
    /// `led_count` is clamped to what the model can drive (at least 1).
    pub fn new(model: Model, led_count: Option<usize>) -> Layout {
        let count = led_count
            .unwrap_or(model.default_led_count())
            .clamp(1, model.max_led_count());
        Layout {
            model,
            led_count: count,
        }
    }

    /// Frames go out as report 1 (one LED) rather than frame reports.
    fn single_led(&self) -> bool {
        self.model == Model::Original || (self.model == Model::Pro && self.led_count == 1)
    }

    /// Reports to send once after opening the stick: WS2812 mode for a multi-LED
    /// Pro, the LED count for a Flex.
    pub fn setup_reports(&self) -> Vec<Vec<u8>> {
        match self.model {
            Model::Pro if !self.single_led() => vec![vec![REPORT_MODE, MODE_WS2812]],
            Model::Flex => vec![vec![REPORT_FLEX_COUNT, self.led_count as u8]],
            _ => Vec::new(),
        }
    }

    /// The reports that show `leds` (padded with off or cut to the LED count): one
    /// report 1 for single-LED sticks, else one frame report per channel — the
    /// smallest of 6–9 that holds the channel's LEDs.
    pub fn frame_reports(&self, leds: &[Rgb]) -> Vec<Vec<u8>> {
        let led = |i: usize| {
            if i < self.led_count {
                leds.get(i).copied().unwrap_or(Rgb::OFF)
            } else {
                Rgb::OFF
            }
        };
        if self.single_led() {
            return vec![encode_color(led(0))];
        }
        let channels = self.led_count.div_ceil(PRO_CHANNEL_LEDS);
        (0..channels)
            .map(|channel| {
                let first = channel * PRO_CHANNEL_LEDS;
                let count = (self.led_count - first).min(PRO_CHANNEL_LEDS);
                let slice: Vec<Rgb> = (first..first + count).map(led).collect();
                encode_frame(channel as u8, &slice)
            })
            .collect()
    }
}

impl Layout {
    /// How to read back what the stick shows, when the firmware can tell: report 1
    /// for one LED; the frame report when every LED is on channel 0 (a GET names no
    /// channel, and the firmware answers with channel 0).
    pub fn readback_report(&self) -> Option<(u8, usize)> {
        if self.single_led() {
            return report_size(REPORT_COLOR).map(|size| (REPORT_COLOR, size));
        }
        if self.led_count > PRO_CHANNEL_LEDS {
            return None;
        }
        let (id, _) = frame_report_for(self.led_count)?;
        report_size(id).map(|size| (id, size))
    }

    /// The LEDs a read-back report shows, as many as the layout drives; none if the
    /// bytes are not that report.
    pub fn decode_readback(&self, report: &[u8]) -> Option<Vec<Rgb>> {
        let (id, size) = self.readback_report()?;
        if report.len() != size || report.first() != Some(&id) {
            return None;
        }
        if id == REPORT_COLOR {
            return Some(vec![Rgb::new(report[1], report[2], report[3])]);
        }
        Some(
            report[2..]
                .chunks_exact(3)
                .take(self.led_count)
                .map(|grb| Rgb::new(grb[1], grb[0], grb[2]))
                .collect(),
        )
    }
}

/// Report 1: `[1, R, G, B]`, LED 0.
pub fn encode_color(c: Rgb) -> Vec<u8> {
    vec![REPORT_COLOR, c.r, c.g, c.b]
}

/// Report 5: `[5, channel, index, R, G, B]`, one LED.
pub fn encode_indexed(channel: u8, index: u8, c: Rgb) -> Vec<u8> {
    vec![REPORT_INDEXED, channel, index, c.r, c.g, c.b]
}

/// The frame report (6–9) that holds `count` LEDs, or none over 64.
pub fn frame_report_for(count: usize) -> Option<(u8, usize)> {
    FRAME_REPORTS
        .into_iter()
        .find(|(_, capacity)| count <= *capacity)
}

/// Reports 6–9: `[id, channel, G, R, B, …]`, unused slots off. At most 64 LEDs.
pub fn encode_frame(channel: u8, leds: &[Rgb]) -> Vec<u8> {
    let leds = &leds[..leds.len().min(PRO_CHANNEL_LEDS)];
    let (id, capacity) = frame_report_for(leds.len()).unwrap_or(FRAME_REPORTS[3]);
    let mut report = Vec::with_capacity(2 + 3 * capacity);
    report.push(id);
    report.push(channel);
    for i in 0..capacity {
        let c = leds.get(i).copied().unwrap_or(Rgb::OFF);
        report.extend_from_slice(&[c.g, c.r, c.b]);
    }
    report
}

/// A decoded report, as the firmware reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Color(Rgb),
    Info { block: u8, data: [u8; 32] },
    Mode(u8),
    Indexed { channel: u8, index: u8, color: Rgb },
    Frame { channel: u8, leds: Vec<Rgb> },
    FlexCount(u8),
}

/// Why bytes are not a valid report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("empty report")]
    Empty,
    #[error("unknown report ID {0:#04x}")]
    UnknownId(u8),
    #[error("report {id} must be {expected} bytes, got {got}")]
    Length { id: u8, expected: usize, got: usize },
}

/// Decodes a SET_FEATURE buffer, checking its exact length.
pub fn decode(bytes: &[u8]) -> Result<Report, ReportError> {
    let id = *bytes.first().ok_or(ReportError::Empty)?;
    let expected = report_size(id).ok_or(ReportError::UnknownId(id))?;
    if bytes.len() != expected {
        return Err(ReportError::Length {
            id,
            expected,
            got: bytes.len(),
        });
    }
    Ok(match id {
        REPORT_COLOR => Report::Color(Rgb::new(bytes[1], bytes[2], bytes[3])),
        REPORT_INFO_1 | REPORT_INFO_2 => {
            let mut data = [0u8; 32];
            data.copy_from_slice(&bytes[1..33]);
            Report::Info {
                block: id - 1,
                data,
            }
        }
        REPORT_MODE => Report::Mode(bytes[1]),
        REPORT_INDEXED => Report::Indexed {
            channel: bytes[1],
            index: bytes[2],
            color: Rgb::new(bytes[3], bytes[4], bytes[5]),
        },
        REPORT_FLEX_COUNT => Report::FlexCount(bytes[1]),
        _ => Report::Frame {
            channel: bytes[1],
            leds: bytes[2..]
                .chunks_exact(3)
                .map(|grb| Rgb::new(grb[1], grb[0], grb[2]))
                .collect(),
        },
    })
}

/// Text of an info block (report 2 or 3): up to the first NUL.
pub fn info_text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Original BlinkStick firmware 1.1–1.3 ignores a colour that equals the previous one
/// with red and green swapped. Returns the colour to send first so the target is
/// not mistaken for "unchanged".
pub fn v1_nudge(release: u16, previous: Rgb, next: Rgb) -> Option<Rgb> {
    let buggy = (0x0101..=0x0103).contains(&release);
    let swapped = Rgb::new(previous.g, previous.r, previous.b);
    (buggy && next != previous && next == swapped).then(|| Rgb::new(next.r ^ 1, next.g, next.b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_sizes_match_the_reference_table() {
        let table = [
            (1, 4),
            (2, 33),
            (3, 33),
            (4, 2),
            (5, 6),
            (6, 26),
            (7, 50),
            (8, 98),
            (9, 194),
            (0x81, 2),
        ];
        for (id, size) in table {
            assert_eq!(report_size(id), Some(size), "report {id}");
        }
        assert_eq!(report_size(10), None);
    }

    #[test]
    fn simple_reports_are_byte_exact() {
        assert_eq!(encode_color(Rgb::new(1, 2, 3)), [1, 1, 2, 3]);
        assert_eq!(
            encode_indexed(2, 7, Rgb::new(10, 20, 30)),
            [5, 2, 7, 10, 20, 30]
        );
        assert_eq!(
            Layout::new(Model::Pro, Some(10)).setup_reports(),
            vec![vec![4, 2]]
        );
        assert_eq!(
            Layout::new(Model::Flex, Some(12)).setup_reports(),
            vec![vec![0x81, 12]]
        );
        assert!(Layout::new(Model::Strip, None).setup_reports().is_empty());
        assert!(
            Layout::new(Model::Pro, None).setup_reports().is_empty(),
            "1-LED Pro stays in mode 0"
        );
    }

    #[test]
    fn frame_reports_are_grb_with_channel_byte() {
        let leds = [Rgb::new(1, 2, 3), Rgb::new(4, 5, 6)];
        let report = encode_frame(0, &leds);
        assert_eq!(report.len(), 26);
        assert_eq!(&report[..8], &[6, 0, 2, 1, 3, 5, 4, 6]);
        assert!(report[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn smallest_frame_report_that_holds_the_leds() {
        for (count, id, size) in [
            (1, 6, 26),
            (8, 6, 26),
            (9, 7, 50),
            (16, 7, 50),
            (17, 8, 98),
            (32, 8, 98),
            (33, 9, 194),
            (64, 9, 194),
        ] {
            let report = encode_frame(0, &vec![Rgb::new(9, 9, 9); count]);
            assert_eq!((report[0], report.len()), (id, size), "{count} LEDs");
        }
    }

    #[test]
    fn one_transfer_per_frame_per_model() {
        let leds = vec![Rgb::new(7, 8, 9); 200];
        for model in Model::ALL {
            let layout = Layout::new(model, None);
            let reports = layout.frame_reports(&leds);
            assert_eq!(reports.len(), 1, "{model:?}");
            let expected_id = match model {
                Model::Original | Model::Pro => 1,
                Model::Square | Model::Strip | Model::Nano => 6,
                Model::Flex => 8,
            };
            assert_eq!(reports[0][0], expected_id, "{model:?}");
            assert_eq!(Some(reports[0].len()), report_size(expected_id));
        }
    }

    #[test]
    fn pro_spreads_long_strips_over_channels() {
        let leds: Vec<Rgb> = (0..150).map(|i| Rgb::new(i as u8, 0, 0)).collect();
        let reports = Layout::new(Model::Pro, Some(150)).frame_reports(&leds);
        assert_eq!(reports.len(), 3);
        assert_eq!((reports[0][0], reports[0][1]), (9, 0));
        assert_eq!((reports[1][0], reports[1][1]), (9, 1));
        assert_eq!(
            (reports[2][0], reports[2][1]),
            (8, 2),
            "22 LEDs need report 8 (32)"
        );
        assert_eq!(
            reports[1][2..5],
            [0, 64, 0],
            "LED 64 is channel 1 index 0, GRB"
        );
    }

    #[test]
    fn frames_are_padded_and_cut_to_the_layout() {
        let nano = Layout::new(Model::Nano, None);
        let reports =
            nano.frame_reports(&[Rgb::new(1, 1, 1), Rgb::new(2, 2, 2), Rgb::new(3, 3, 3)]);
        assert_eq!(
            &reports[0][2..11],
            &[1, 1, 1, 2, 2, 2, 0, 0, 0],
            "third LED cut"
        );
        let short = Layout::new(Model::Strip, None).frame_reports(&[]);
        assert!(short[0][2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn decode_inverts_encode() {
        let leds = vec![Rgb::new(1, 2, 3); 16];
        assert_eq!(
            decode(&encode_frame(1, &leds)),
            Ok(Report::Frame { channel: 1, leds })
        );
        assert_eq!(decode(&[1, 4, 5, 6]), Ok(Report::Color(Rgb::new(4, 5, 6))));
        assert_eq!(decode(&[4, 2]), Ok(Report::Mode(2)));
        assert_eq!(decode(&[0x81, 5]), Ok(Report::FlexCount(5)));
        assert_eq!(
            decode(&encode_indexed(0, 1, Rgb::new(1, 2, 3))),
            Ok(Report::Indexed {
                channel: 0,
                index: 1,
                color: Rgb::new(1, 2, 3)
            })
        );
        let mut info = vec![2u8; 33];
        info[1..5].copy_from_slice(b"desk");
        info[5] = 0;
        let Ok(Report::Info { block: 1, data }) = decode(&info) else {
            panic!("info block 1")
        };
        assert_eq!(info_text(&data), "desk");
        assert_eq!(
            decode(&[6, 0, 1]),
            Err(ReportError::Length {
                id: 6,
                expected: 26,
                got: 3
            })
        );
        assert_eq!(decode(&[0x42]), Err(ReportError::UnknownId(0x42)));
        assert_eq!(decode(&[]), Err(ReportError::Empty));
    }

    #[test]
    fn models_are_detected_from_serial_and_release() {
        assert_eq!(detect_model("BS000001-1.0", 0x0102), Some(Model::Original));
        assert_eq!(detect_model("BS012345-2.1", 0), Some(Model::Pro));
        assert_eq!(detect_model("BS123456-3.0", 0x0200), Some(Model::Square));
        assert_eq!(detect_model("BS123456-3.0", 0x0201), Some(Model::Strip));
        assert_eq!(detect_model("BS123456-3.1", 0x0202), Some(Model::Nano));
        assert_eq!(detect_model("BS123456-3.1", 0x0203), Some(Model::Flex));
        assert_eq!(
            detect_model("BS123456-3.1", 0),
            None,
            "uhid reports release 0: needs an override"
        );
        assert_eq!(detect_model("garbage", 0x0201), None);
        for model in Model::ALL {
            let serial = format!("BS000042-{}.0", model.generation());
            let detected = detect_model(&serial, model.release());
            // Square and Pro share 0x0200 but differ in generation.
            assert_eq!(detected, Some(model), "{model:?}");
        }
    }

    #[test]
    fn led_count_is_clamped_to_the_model() {
        assert_eq!(Layout::new(Model::Nano, Some(10)).led_count, 2);
        assert_eq!(Layout::new(Model::Flex, Some(0)).led_count, 1);
        assert_eq!(Layout::new(Model::Pro, Some(500)).led_count, 192);
    }

    #[test]
    fn v1_nudge_only_for_the_buggy_firmware_and_a_swap() {
        let old = Rgb::new(10, 20, 30);
        let swapped = Rgb::new(20, 10, 30);
        let nudge = v1_nudge(0x0102, old, swapped).expect("buggy firmware");
        assert_ne!(nudge, swapped);
        assert_eq!(
            v1_nudge(0x0102, nudge, swapped),
            None,
            "after the nudge the target goes through"
        );
        assert_eq!(v1_nudge(0x0104, old, swapped), None);
        assert_eq!(v1_nudge(0x0102, old, Rgb::new(1, 2, 3)), None);
        assert_eq!(v1_nudge(0x0102, Rgb::new(5, 5, 5), Rgb::new(5, 5, 5)), None);
    }
}
