//! An in-process BlinkStick that reads exactly the bytes the firmware would: report
//! IDs and sizes, GRB order, channel byte, modes, the busy window after a write,
//! read-back, and the original stick's quirks. [`EmulatorBus`] puts any number of
//! them behind the same [`Bus`] as real hardware, with plug and unplug.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::device::DeviceError;
use crate::device::family::Family;
use crate::device::protocol::{self, Model, Report, ReportError};
use crate::device::transport::{Bus, DeviceInfo, Transport};
use crate::frame::Rgb;
use crate::lock::lock;

const CHANNEL_LEDS: usize = protocol::PRO_CHANNEL_LEDS;

/// How long the firmware stops answering after a write that drives LEDs: USB
/// turnaround plus 30 µs per WS2812 LED clocked out.
fn busy_time(leds: usize) -> Duration {
    Duration::from_micros(1000 + 30 * leds as u64)
}

/// One stick's firmware state.
#[derive(Debug, Clone)]
pub struct Firmware {
    model: Model,
    serial: String,
    release: u16,
    mode: u8,
    flex_count: u8,
    /// Three channels of 64 LEDs; single-LED boards use channel 0 index 0.
    channels: [[Rgb; CHANNEL_LEDS]; 3],
    /// Original BlinkStick: the PWM registers hold the inverted colour.
    pwm: Rgb,
    info: [[u8; 32]; 2],
    busy_until: Option<Instant>,
    received: Vec<(Instant, Vec<u8>)>,
    busy_rejections: u32,
}

impl Firmware {
    pub fn new(model: Model, serial: &str) -> Firmware {
        Firmware {
            model,
            serial: serial.to_string(),
            release: model.release(),
            mode: protocol::MODE_NORMAL,
            flex_count: Model::Flex.default_led_count() as u8,
            channels: [[Rgb::OFF; CHANNEL_LEDS]; 3],
            pwm: Rgb::new(255, 255, 255),
            info: [[0; 32]; 2],
            busy_until: None,
            received: Vec::new(),
            busy_rejections: 0,
        }
    }

    /// Firmware of another release (e.g. an original stick on 1.2 with the swap bug).
    pub fn with_release(mut self, release: u16) -> Firmware {
        self.release = release;
        self
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn info(&self) -> DeviceInfo {
        DeviceInfo {
            family: Family::BlinkStick,
            led_count: None,
            serial: self.serial.clone(),
            release: self.release,
            manufacturer: "Agile Innovative Ltd".into(),
            product: "BlinkStick".into(),
            path: format!("emulator:{}", self.serial),
        }
    }

    /// What the LEDs show now.
    pub fn leds(&self) -> Vec<Rgb> {
        match self.model {
            Model::Original => vec![Rgb::new(
                255 - self.pwm.r,
                255 - self.pwm.g,
                255 - self.pwm.b,
            )],
            Model::Pro if self.mode == protocol::MODE_WS2812 => {
                self.channels.iter().flatten().copied().collect()
            }
            Model::Pro => vec![self.channels[0][0]],
            Model::Flex => {
                self.channels[0][..usize::from(self.flex_count).min(CHANNEL_LEDS)].to_vec()
            }
            other => self.channels[0][..other.default_led_count()].to_vec(),
        }
    }

    /// Every report accepted, with when it arrived.
    pub fn received(&self) -> &[(Instant, Vec<u8>)] {
        &self.received
    }

    /// Writes refused because the firmware was busy.
    pub fn busy_rejections(&self) -> u32 {
        self.busy_rejections
    }

    pub fn mode(&self) -> u8 {
        self.mode
    }

    fn check_ready(&mut self, now: Instant) -> Result<(), DeviceError> {
        if self.busy_until.is_some_and(|until| now < until) {
            self.busy_rejections += 1;
            return Err(DeviceError::Busy);
        }
        Ok(())
    }

    fn supports(&self, id: u8) -> bool {
        match self.model {
            Model::Original => matches!(id, 1..=3),
            Model::Flex => true,
            _ => id != protocol::REPORT_FLEX_COUNT,
        }
    }

    /// A SET_FEATURE request.
    pub fn set_feature(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError> {
        self.check_ready(now)?;
        let refuse = |e: ReportError| DeviceError::Refused {
            id: bytes.first().copied().unwrap_or(0),
            reason: e.to_string(),
        };
        let report = protocol::decode(bytes).map_err(refuse)?;
        if !self.supports(bytes[0]) {
            return Err(DeviceError::Refused {
                id: bytes[0],
                reason: format!("{:?} firmware has no such report", self.model),
            });
        }
        self.received.push((now, bytes.to_vec()));
        let busy_leds = match report {
            Report::Color(c) => {
                self.set_led0(c);
                None
            }
            Report::Info { block, data } => {
                self.info[usize::from(block - 1)] = data;
                None
            }
            Report::Mode(mode) => {
                self.mode = mode;
                Some(0)
            }
            Report::Indexed {
                channel,
                index,
                color,
            } => {
                // The Pro only drives indexed LEDs in WS2812 mode.
                if (self.model != Model::Pro || self.mode == protocol::MODE_WS2812)
                    && let Some(led) = self.led_mut(channel, index)
                {
                    *led = color;
                }
                Some(1)
            }
            Report::Frame { channel, leds } => {
                let count = leds.len();
                if let Some(row) = self.channels.get_mut(usize::from(channel)) {
                    row[..count].copy_from_slice(&leds);
                }
                Some(count)
            }
            Report::FlexCount(count) => {
                self.flex_count = count.clamp(1, 32);
                Some(0)
            }
        };
        if let Some(leds) = busy_leds {
            self.busy_until = Some(now + busy_time(leds));
        }
        Ok(())
    }

    fn led_mut(&mut self, channel: u8, index: u8) -> Option<&mut Rgb> {
        self.channels
            .get_mut(usize::from(channel))?
            .get_mut(usize::from(index))
    }

    fn set_led0(&mut self, c: Rgb) {
        if self.model == Model::Original {
            let shown = self.leds()[0];
            // Firmware 1.1–1.3 compares the new colour with the old one with red and
            // green swapped, and drops it as "unchanged".
            if (0x0101..=0x0103).contains(&self.release) && c == Rgb::new(shown.g, shown.r, shown.b)
            {
                return;
            }
            self.pwm = Rgb::new(255 - c.r, 255 - c.g, 255 - c.b);
        } else {
            self.channels[0][0] = c;
        }
    }

    /// A GET_FEATURE request.
    pub fn get_feature(
        &mut self,
        id: u8,
        size: usize,
        now: Instant,
    ) -> Result<Vec<u8>, DeviceError> {
        self.check_ready(now)?;
        let expected = protocol::report_size(id)
            .filter(|_| self.supports(id))
            .ok_or(DeviceError::Refused {
                id,
                reason: "no such report".into(),
            })?;
        if size != expected {
            return Err(DeviceError::Refused {
                id,
                reason: format!("must be read as {expected} bytes, not {size}"),
            });
        }
        let mut out = vec![0u8; expected];
        out[0] = id;
        match id {
            protocol::REPORT_COLOR => {
                let c = self.leds()[0];
                out[1..4].copy_from_slice(&[c.r, c.g, c.b]);
            }
            protocol::REPORT_INFO_1 | protocol::REPORT_INFO_2 => {
                out[1..].copy_from_slice(&self.info[usize::from(id - 2)]);
            }
            protocol::REPORT_MODE => out[1] = self.mode,
            protocol::REPORT_FLEX_COUNT => out[1] = self.flex_count,
            protocol::REPORT_INDEXED => {}
            _ => {
                // Frame read-back: channel 0's LEDs, channel byte 0.
                for (slot, c) in out[2..].chunks_exact_mut(3).zip(self.channels[0].iter()) {
                    slot.copy_from_slice(&[c.g, c.r, c.b]);
                }
            }
        }
        Ok(out)
    }
}

/// An emulated USB light of another family than BlinkStick (blink(1), Luxafor): the
/// requests its firmware takes, byte for byte.
pub trait EmulatedLight: Send + std::fmt::Debug {
    fn info(&self) -> DeviceInfo;
    /// A SET_FEATURE request.
    fn set_feature(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError>;
    /// A GET_FEATURE request.
    fn get_feature(&mut self, id: u8, size: usize, now: Instant) -> Result<Vec<u8>, DeviceError>;
    /// An output report (`bytes[0]` its ID, 0 for none).
    fn write(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError>;
    /// What the LEDs show now.
    fn leds(&self) -> Vec<Rgb>;
    /// Every report taken, with when it arrived.
    fn received(&self) -> &[(Instant, Vec<u8>)];
}

/// The BlinkStick firmware as one light among the families (the uhid light drives
/// every family through this trait).
impl EmulatedLight for Firmware {
    fn info(&self) -> DeviceInfo {
        Firmware::info(self)
    }

    fn set_feature(&mut self, bytes: &[u8], now: Instant) -> Result<(), DeviceError> {
        Firmware::set_feature(self, bytes, now)
    }

    fn get_feature(&mut self, id: u8, size: usize, now: Instant) -> Result<Vec<u8>, DeviceError> {
        Firmware::get_feature(self, id, size, now)
    }

    fn write(&mut self, bytes: &[u8], _now: Instant) -> Result<(), DeviceError> {
        Err(DeviceError::Refused {
            id: bytes.first().copied().unwrap_or(0),
            reason: "a BlinkStick takes feature reports only".into(),
        })
    }

    fn leds(&self) -> Vec<Rgb> {
        Firmware::leds(self)
    }

    fn received(&self) -> &[(Instant, Vec<u8>)] {
        Firmware::received(self)
    }
}

type SharedLight = Arc<Mutex<dyn EmulatedLight>>;

/// Lights plugged into the emulator, by serial (identity): BlinkSticks with their
/// own firmware type, other families behind [`EmulatedLight`].
#[derive(Debug, Default, Clone)]
pub struct EmulatorBus {
    sticks: Arc<Mutex<BTreeMap<String, Arc<Mutex<Firmware>>>>>,
    lights: Arc<Mutex<BTreeMap<String, SharedLight>>>,
}

impl EmulatorBus {
    pub fn new() -> Self {
        EmulatorBus::default()
    }

    /// Plugs in a fresh stick (LEDs off, as after power-up).
    pub fn plug(&self, firmware: Firmware) -> Arc<Mutex<Firmware>> {
        let stick = Arc::new(Mutex::new(firmware));
        let serial = lock(&stick).serial.clone();
        lock(&self.sticks).insert(serial, Arc::clone(&stick));
        stick
    }

    /// Plugs in a light of another family.
    pub fn plug_light(&self, light: impl EmulatedLight + 'static) -> SharedLight {
        let serial = light.info().serial;
        let light: SharedLight = Arc::new(Mutex::new(light));
        lock(&self.lights).insert(serial, Arc::clone(&light));
        light
    }

    pub fn unplug(&self, serial: &str) {
        lock(&self.sticks).remove(serial);
        lock(&self.lights).remove(serial);
    }

    /// The light of another family plugged in under this serial now.
    pub fn light(&self, serial: &str) -> Option<SharedLight> {
        lock(&self.lights).get(serial).cloned()
    }

    /// The stick plugged in under this serial now.
    pub fn stick(&self, serial: &str) -> Option<Arc<Mutex<Firmware>>> {
        lock(&self.sticks).get(serial).cloned()
    }

    /// What the light with this serial shows now.
    pub fn leds(&self, serial: &str) -> Option<Vec<Rgb>> {
        match self.stick(serial) {
            Some(stick) => Some(lock(&stick).leds()),
            None => self.light(serial).map(|l| lock(&l).leds()),
        }
    }
}

impl Bus for EmulatorBus {
    fn list(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        let mut all: Vec<DeviceInfo> = lock(&self.sticks)
            .values()
            .map(|s| lock(s).info())
            .collect();
        all.extend(lock(&self.lights).values().map(|l| lock(l).info()));
        Ok(all)
    }

    fn open(&self, serial: &str) -> Result<Box<dyn Transport>, DeviceError> {
        if let Some(light) = self.light(serial) {
            return Ok(Box::new(EmulatedLightTransport {
                bus: self.clone(),
                serial: serial.to_string(),
                light,
            }));
        }
        let stick = self.stick(serial).ok_or(DeviceError::NotFound {
            serial: Some(serial.to_string()),
        })?;
        Ok(Box::new(EmulatedTransport {
            bus: self.clone(),
            serial: serial.to_string(),
            stick,
        }))
    }
}

/// An open emulated light of another family; gone for good once unplugged, as an
/// [`EmulatedTransport`] is.
struct EmulatedLightTransport {
    bus: EmulatorBus,
    serial: String,
    light: SharedLight,
}

impl EmulatedLightTransport {
    fn present(&self) -> Result<MutexGuard<'_, dyn EmulatedLight + 'static>, DeviceError> {
        match self.bus.light(&self.serial) {
            Some(now) if Arc::ptr_eq(&now, &self.light) => Ok(lock(&self.light)),
            _ => Err(DeviceError::Gone {
                serial: self.serial.clone(),
            }),
        }
    }
}

impl Transport for EmulatedLightTransport {
    fn set_feature(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        self.present()?.set_feature(report, Instant::now())
    }

    fn get_feature(&mut self, id: u8, size: usize) -> Result<Vec<u8>, DeviceError> {
        self.present()?.get_feature(id, size, Instant::now())
    }

    fn write(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        self.present()?.write(report, Instant::now())
    }

    fn is_connected(&mut self) -> bool {
        self.present().is_ok()
    }
}

/// An open emulated stick. Once unplugged it stays gone, even if a stick with the
/// same serial is plugged in again: that one must be opened anew, as with USB.
struct EmulatedTransport {
    bus: EmulatorBus,
    serial: String,
    stick: Arc<Mutex<Firmware>>,
}

impl EmulatedTransport {
    fn present(&self) -> Result<MutexGuard<'_, Firmware>, DeviceError> {
        match self.bus.stick(&self.serial) {
            Some(now) if Arc::ptr_eq(&now, &self.stick) => Ok(lock(&self.stick)),
            _ => Err(DeviceError::Gone {
                serial: self.serial.clone(),
            }),
        }
    }
}

impl Transport for EmulatedTransport {
    fn set_feature(&mut self, report: &[u8]) -> Result<(), DeviceError> {
        self.present()?.set_feature(report, Instant::now())
    }

    fn get_feature(&mut self, id: u8, size: usize) -> Result<Vec<u8>, DeviceError> {
        self.present()?.get_feature(id, size, Instant::now())
    }

    fn is_connected(&mut self) -> bool {
        self.present().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::protocol::Layout;
    use crate::device::transport::set_feature_with_retry;

    fn after_busy(now: Instant) -> Instant {
        now + Duration::from_millis(10)
    }

    #[test]
    fn every_model_round_trips_a_frame() {
        for model in Model::ALL {
            let layout = Layout::new(
                model,
                Some(if model == Model::Pro {
                    100
                } else {
                    model.max_led_count()
                }),
            );
            let mut fw = Firmware::new(model, "BS000001-3.0");
            let mut now = Instant::now();
            for report in layout.setup_reports() {
                fw.set_feature(&report, now).expect("setup accepted");
                now = after_busy(now);
            }
            let leds: Vec<Rgb> = (0..layout.led_count)
                .map(|i| Rgb::new(i as u8, 255 - i as u8, 7))
                .collect();
            for report in layout.frame_reports(&leds) {
                fw.set_feature(&report, now).expect("frame accepted");
                now = after_busy(now);
            }
            assert_eq!(&fw.leds()[..layout.led_count], &leds[..], "{model:?}");
            // Read back where the firmware can tell (one channel's worth at most).
            match layout.readback_report() {
                Some((id, size)) => {
                    let report = fw.get_feature(id, size, now).expect("read back");
                    assert_eq!(layout.decode_readback(&report), Some(leds), "{model:?}");
                }
                None => assert!(layout.led_count > 64, "{model:?}"),
            }
        }
    }

    #[test]
    fn read_back_returns_what_was_written() {
        let mut fw = Firmware::new(Model::Strip, "BS000001-3.0");
        let now = Instant::now();
        let leds = vec![Rgb::new(1, 2, 3); 8];
        fw.set_feature(&protocol::encode_frame(0, &leds), now)
            .expect("accepted");
        let back = fw.get_feature(6, 26, after_busy(now)).expect("read back");
        assert_eq!(
            back,
            protocol::encode_frame(0, &leds),
            "channel byte reads as 0"
        );
        let color = fw.get_feature(1, 4, after_busy(now)).expect("report 1");
        assert_eq!(color, [1, 1, 2, 3]);
        assert!(
            fw.get_feature(6, 25, after_busy(now)).is_err(),
            "exact size only"
        );
    }

    #[test]
    fn busy_window_refuses_an_immediate_second_write() {
        let mut fw = Firmware::new(Model::Strip, "BS000001-3.0");
        let now = Instant::now();
        let frame = protocol::encode_frame(0, &[Rgb::new(9, 9, 9)]);
        fw.set_feature(&frame, now).expect("first write");
        assert_eq!(
            fw.set_feature(&frame, now + Duration::from_micros(100)),
            Err(DeviceError::Busy)
        );
        assert_eq!(
            fw.get_feature(1, 4, now),
            Err(DeviceError::Busy),
            "reads too"
        );
        fw.set_feature(&frame, now + Duration::from_millis(2))
            .expect("after the window");
        assert_eq!(fw.busy_rejections(), 2);
    }

    #[test]
    fn retry_rides_out_the_busy_window() {
        let bus = EmulatorBus::new();
        let stick = bus.plug(Firmware::new(Model::Strip, "BS000001-3.0"));
        let mut transport = bus.open("BS000001-3.0").expect("opens");
        let frame = protocol::encode_frame(0, &[Rgb::new(9, 9, 9); 8]);
        assert_eq!(set_feature_with_retry(transport.as_mut(), &frame), Ok(1));
        let tries = set_feature_with_retry(transport.as_mut(), &frame).expect("retried");
        assert!(tries > 1, "the second write met the busy window");
        assert_eq!(lock(&stick).received().len(), 2);
    }

    #[test]
    fn wrong_lengths_and_foreign_reports_are_refused() {
        let mut fw = Firmware::new(Model::Original, "BS000001-1.0");
        let now = Instant::now();
        assert!(matches!(
            fw.set_feature(&[1, 2, 3], now),
            Err(DeviceError::Refused { id: 1, .. })
        ));
        assert!(matches!(
            fw.set_feature(&[5, 0, 0, 1, 2, 3], now),
            Err(DeviceError::Refused { id: 5, .. })
        ));
        assert!(fw.received().is_empty());
        let mut strip = Firmware::new(Model::Strip, "BS000001-3.0");
        assert!(matches!(
            strip.set_feature(&[0x81, 3], now),
            Err(DeviceError::Refused { .. })
        ));
    }

    #[test]
    fn pro_ignores_indexed_writes_until_ws2812_mode() {
        let mut fw = Firmware::new(Model::Pro, "BS000001-2.0");
        let mut now = Instant::now();
        fw.set_feature(&protocol::encode_indexed(0, 3, Rgb::new(5, 5, 5)), now)
            .expect("accepted");
        now = after_busy(now);
        fw.set_feature(&[4, 2], now).expect("mode 2");
        now = after_busy(now);
        assert_eq!(fw.leds()[3], Rgb::OFF, "ignored in mode 0");
        fw.set_feature(&protocol::encode_indexed(0, 3, Rgb::new(5, 5, 5)), now)
            .expect("accepted");
        assert_eq!(fw.leds()[3], Rgb::new(5, 5, 5));
        assert_eq!(fw.mode(), 2);
    }

    #[test]
    fn original_stick_inverts_pwm_and_has_the_swap_bug() {
        let mut fw = Firmware::new(Model::Original, "BS000001-1.0").with_release(0x0102);
        let now = Instant::now();
        fw.set_feature(&[1, 10, 20, 30], now).expect("accepted");
        assert_eq!(
            fw.pwm,
            Rgb::new(245, 235, 225),
            "PWM is inverted in firmware"
        );
        assert_eq!(
            fw.get_feature(1, 4, now).expect("read"),
            [1, 10, 20, 30],
            "read-back un-inverts"
        );
        fw.set_feature(&[1, 20, 10, 30], now).expect("accepted");
        assert_eq!(
            fw.leds(),
            vec![Rgb::new(10, 20, 30)],
            "the swap bug drops it"
        );
        let nudge =
            protocol::v1_nudge(0x0102, Rgb::new(10, 20, 30), Rgb::new(20, 10, 30)).expect("nudge");
        fw.set_feature(&protocol::encode_color(nudge), now)
            .expect("accepted");
        fw.set_feature(&[1, 20, 10, 30], now).expect("accepted");
        assert_eq!(
            fw.leds(),
            vec![Rgb::new(20, 10, 30)],
            "the nudge works around it"
        );
    }

    #[test]
    fn flex_count_changes_the_leds_shown() {
        let mut fw = Firmware::new(Model::Flex, "BS000001-3.0");
        fw.set_feature(&[0x81, 5], Instant::now())
            .expect("accepted");
        assert_eq!(fw.leds().len(), 5);
        assert_eq!(
            fw.get_feature(0x81, 2, after_busy(Instant::now()))
                .expect("read"),
            [0x81, 5]
        );
    }

    #[test]
    fn unplugged_transport_stays_gone_after_replug() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Nano, "BS000009-3.1"));
        let mut old = bus.open("BS000009-3.1").expect("opens");
        bus.unplug("BS000009-3.1");
        assert!(bus.list().expect("list").is_empty());
        assert_eq!(
            old.set_feature(&[1, 1, 1, 1]),
            Err(DeviceError::Gone {
                serial: "BS000009-3.1".into()
            })
        );
        bus.plug(Firmware::new(Model::Nano, "BS000009-3.1"));
        assert!(
            old.set_feature(&[1, 1, 1, 1]).is_err(),
            "the old handle is dead"
        );
        let mut new = bus.open("BS000009-3.1").expect("reopens");
        new.set_feature(&[1, 1, 1, 1]).expect("new handle works");
    }
}
