//! The lights podlight drives, of any family: opened by serial (or the first found),
//! joined into one strip or mirroring one frame, reconnected with backoff when they
//! go away, kept showing their frame where a family needs it sent again.
//! Blocking: runs on the frame writer's own thread, never on the async runtime.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DeviceError;
use super::family::{DeviceLayout, Family, Message};
use super::protocol::{self, Layout, Model};
use super::transport::{Bus, DeviceInfo, Transport, set_feature_with_retry};
use crate::frame::Rgb;
use crate::lock::lock;

/// First retry after a light is missing, doubling up to the bus's
/// [`Bus::max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How several sticks share a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Joining {
    /// One long strip: the first stick's LEDs, then the next stick's…
    #[default]
    Strip,
    /// Every stick shows the same frame.
    Mirror,
}

/// Which light, and what it is when it cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StickSpec {
    /// None: the first light found that no other spec claimed.
    pub serial: Option<String>,
    /// A BlinkStick's model; other families tell theirs.
    pub model: Option<Model>,
    /// Fewer LEDs than the light has (or, on a BlinkStick Pro or Flex, how many are
    /// wired).
    pub led_count: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    pub sticks: Vec<StickSpec>,
    pub joining: Joining,
}

/// Counters for readiness and metrics, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct DeviceStatus {
    pub(crate) connected: AtomicUsize,
    pub(crate) expected: AtomicUsize,
    pub(crate) writes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) led_count: AtomicUsize,
    /// The family of each light connected now, in strip order.
    pub(crate) families: Mutex<Vec<Family>>,
    /// Woken whenever the LED count changes, so nobody has to poll it.
    pub led_count_changed: tokio::sync::Notify,
}

impl DeviceStatus {
    /// Sticks connected now.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// LEDs over all sticks (strip) or of the largest (mirror); 0 with none.
    pub fn led_count(&self) -> usize {
        self.led_count.load(Ordering::Relaxed)
    }

    /// The LED count a policy evaluates for: what the sticks have, at least one (a
    /// frame for no stick yet is computed for one LED and resized when one arrives).
    pub fn leds_to_evaluate(&self) -> u32 {
        u32::try_from(self.led_count().max(1)).unwrap_or(u32::MAX)
    }

    /// Frames written so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Failed writes so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Times a stick came back after it was lost.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// The family of each light connected now, in strip order.
    pub fn families(&self) -> Vec<Family> {
        lock(&self.families).clone()
    }
}

struct OpenStick {
    transport: Box<dyn Transport>,
    info: DeviceInfo,
    /// The message last written per slot: unchanged ones are not re-sent.
    written: Vec<Message>,
    /// When a message last went out: for the family's frame spacing and keepalive.
    last_sent: Option<Instant>,
}

struct Stick {
    spec: StickSpec,
    layout: Option<DeviceLayout>,
    open: Option<OpenStick>,
    next_attempt: Instant,
    /// Failed attempts in a row, for the pause before the next.
    failures: u32,
    /// Said once that it is missing; said again when it is back.
    reported_missing: bool,
    ever_connected: bool,
}

pub struct DeviceManager {
    bus: Arc<dyn Bus>,
    sticks: Vec<Stick>,
    joining: Joining,
    status: Arc<DeviceStatus>,
}

impl DeviceManager {
    pub fn new(bus: Arc<dyn Bus>, options: DeviceOptions) -> DeviceManager {
        let specs = if options.sticks.is_empty() {
            vec![StickSpec::default()]
        } else {
            options.sticks
        };
        let now = Instant::now();
        let sticks = specs
            .into_iter()
            .map(|spec| Stick {
                layout: spec
                    .model
                    .map(|m| DeviceLayout::BlinkStick(Layout::new(m, spec.led_count))),
                spec,
                open: None,
                next_attempt: now,
                failures: 0,
                reported_missing: false,
                ever_connected: false,
            })
            .collect::<Vec<_>>();
        let status = Arc::new(DeviceStatus::default());
        status.expected.store(sticks.len(), Ordering::Relaxed);
        let mut manager = DeviceManager {
            bus,
            sticks,
            joining: options.joining,
            status,
        };
        manager.update_led_count();
        manager
    }

    pub fn status(&self) -> Arc<DeviceStatus> {
        Arc::clone(&self.status)
    }

    /// LEDs the frame should have: the sum over sticks for a strip, the largest for a
    /// mirror. A stick not seen yet counts with its override, or 1.
    pub fn led_count(&self) -> usize {
        let counts = self.sticks.iter().map(|s| {
            s.layout
                .map_or(s.spec.led_count.unwrap_or(1), |l| l.led_count())
        });
        match self.joining {
            Joining::Strip => counts.sum(),
            Joining::Mirror => counts.max().unwrap_or(1),
        }
    }

    fn update_led_count(&mut self) {
        let count = self.led_count();
        if self.status.led_count.swap(count, Ordering::Relaxed) != count {
            self.status.led_count_changed.notify_waiters();
        }
    }

    /// When the next reconnect attempt is due, if any stick is missing.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.sticks
            .iter()
            .filter(|s| s.open.is_none())
            .map(|s| s.next_attempt)
            .min()
    }

    /// Tries to open missing sticks that are due. True if any came (back): the
    /// caller then re-sends the current frame.
    pub fn reconnect_due(&mut self) -> bool {
        let now = Instant::now();
        if !self
            .sticks
            .iter()
            .any(|s| s.open.is_none() && s.next_attempt <= now)
        {
            return false;
        }
        let present = match self.bus.list() {
            Ok(list) => list,
            Err(e) => {
                self.fail_all_due(now, &e);
                return false;
            }
        };
        let mut any = false;
        for i in 0..self.sticks.len() {
            if self.sticks[i].open.is_some() || self.sticks[i].next_attempt > now {
                continue;
            }
            let claimed: Vec<String> = self
                .sticks
                .iter()
                .filter_map(|s| s.open.as_ref().map(|o| o.info.serial.clone()))
                .collect();
            let candidate = present.iter().find(|d| match &self.sticks[i].spec.serial {
                Some(serial) => &d.serial == serial,
                None => {
                    !claimed.contains(&d.serial)
                        && !self
                            .sticks
                            .iter()
                            .any(|s| s.spec.serial.as_deref() == Some(d.serial.as_str()))
                }
            });
            let result = match candidate {
                Some(info) => self.open(i, info.clone()),
                None => Err(DeviceError::NotFound {
                    serial: self.sticks[i].spec.serial.clone(),
                }),
            };
            match result {
                Ok(()) => any = true,
                Err(e) => self.missing(i, now, &e),
            }
        }
        self.update_led_count();
        any
    }

    fn fail_all_due(&mut self, now: Instant, error: &DeviceError) {
        for i in 0..self.sticks.len() {
            if self.sticks[i].open.is_none() && self.sticks[i].next_attempt <= now {
                self.missing(i, now, error);
            }
        }
    }

    fn missing(&mut self, i: usize, now: Instant, error: &DeviceError) {
        let max_backoff = self.bus.max_backoff();
        let stick = &mut self.sticks[i];
        if !stick.reported_missing {
            tracing::warn!(error = %error, "light not available; retrying in the background");
            stick.reported_missing = true;
        }
        stick.failures = stick.failures.saturating_add(1);
        stick.next_attempt =
            now + crate::timing::doubling(FIRST_BACKOFF, max_backoff, stick.failures);
    }

    fn open(&mut self, i: usize, info: DeviceInfo) -> Result<(), DeviceError> {
        let stick = &mut self.sticks[i];
        let layout = DeviceLayout::for_device(&info, &stick.spec)?;
        let mut transport = self.bus.open(&info.serial)?;
        for message in layout.setup_messages() {
            send(transport.as_mut(), &message)?;
        }
        let family = layout.family();
        tracing::info!(
            family = family.name(),
            serial = %info.serial,
            model = layout.model().map(Model::name),
            leds = layout.led_count(),
            "{} connected",
            family.label()
        );
        if stick.ever_connected {
            self.status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        stick.ever_connected = true;
        stick.reported_missing = false;
        stick.failures = 0;
        stick.layout = Some(layout);
        stick.open = Some(OpenStick {
            transport,
            info,
            written: Vec::new(),
            last_sent: None,
        });
        self.status.connected.fetch_add(1, Ordering::Relaxed);
        self.update_families();
        Ok(())
    }

    fn update_families(&self) {
        *lock(&self.status.families) = self
            .sticks
            .iter()
            .filter(|s| s.open.is_some())
            .filter_map(|s| s.layout.map(|l| l.family()))
            .collect();
    }

    /// The lights open now, with their layouts.
    pub fn connected(&self) -> Vec<(DeviceInfo, DeviceLayout)> {
        self.sticks
            .iter()
            .filter_map(|s| Some((s.open.as_ref()?.info.clone(), s.layout?)))
            .collect()
    }

    /// Shows a frame: each stick gets its part (strip) or all of it (mirror); only
    /// reports whose bytes changed are written, unless `force`. Returns the number of
    /// reports written.
    pub fn show(&mut self, leds: &[Rgb], force: bool) -> usize {
        let mut offset = 0;
        let mut written = 0;
        for i in 0..self.sticks.len() {
            let Some(layout) = self.sticks[i].layout else {
                continue;
            };
            let part: &[Rgb] = match self.joining {
                Joining::Strip => leds.get(offset..).unwrap_or(&[]),
                Joining::Mirror => leds,
            };
            offset += layout.led_count();
            match self.write_stick(i, layout, part, force) {
                Ok(n) => written += n,
                Err(e) => {
                    self.status.errors.fetch_add(1, Ordering::Relaxed);
                    self.lose(i, &e);
                }
            }
        }
        self.status
            .writes
            .fetch_add(written as u64, Ordering::Relaxed);
        written
    }

    /// What the sticks show now, read back from their firmware, when every one can
    /// tell — so the first fade starts from there, not from off.
    pub(crate) fn read_shown(&mut self) -> Option<Vec<Rgb>> {
        let mut frame = Vec::new();
        for stick in &mut self.sticks {
            let layout = stick.layout?;
            let open = stick.open.as_mut()?;
            let mut answers = Vec::new();
            for (request, id, size) in layout.readback()? {
                if let Some(request) = request {
                    send(open.transport.as_mut(), &request).ok()?;
                }
                answers.push(open.transport.get_feature(id, size).ok()?);
            }
            let leds = layout.decode_readback(&answers)?;
            match self.joining {
                Joining::Strip => frame.extend(leds),
                Joining::Mirror if frame.is_empty() => frame = leds,
                Joining::Mirror => {}
            }
        }
        Some(frame)
    }

    /// Notices sticks pulled out while the frame held still, so that they get it
    /// again when they are back. True if any was lost.
    pub(crate) fn check_connected(&mut self) -> bool {
        let mut lost = false;
        for i in 0..self.sticks.len() {
            let gone = self.sticks[i]
                .open
                .as_mut()
                .is_some_and(|open| !open.transport.is_connected());
            if gone {
                let serial = self.sticks[i]
                    .open
                    .as_ref()
                    .map(|o| o.info.serial.clone())
                    .unwrap_or_default();
                self.lose(i, &DeviceError::Gone { serial });
                lost = true;
            }
        }
        lost
    }

    /// Closes a stick that failed or went away and schedules its reconnection now.
    fn lose(&mut self, i: usize, error: &DeviceError) {
        if let Some(open) = self.sticks[i].open.take() {
            self.status.connected.fetch_sub(1, Ordering::Relaxed);
            let label = open.info.family.label();
            tracing::warn!(serial = %open.info.serial, error = %error, "{label} lost; reconnecting");
            self.sticks[i].next_attempt = Instant::now();
            self.sticks[i].reported_missing = true;
            self.update_families();
        }
    }

    /// Sends the frame again to lights that let it go when not told again (WLED's
    /// realtime timeout), when their keepalive is due. Failures lose the light.
    pub(crate) fn refresh_due(&mut self) {
        for i in 0..self.sticks.len() {
            let Some(keepalive) = self.sticks[i].layout.and_then(|l| l.family().keepalive()) else {
                continue;
            };
            let Some(open) = self.sticks[i].open.as_mut() else {
                continue;
            };
            if open.last_sent.is_none_or(|t| t.elapsed() < keepalive) {
                continue;
            }
            let result = open
                .written
                .iter()
                .try_for_each(|message| send(open.transport.as_mut(), message));
            open.last_sent = Some(Instant::now());
            if let Err(e) = result {
                self.status.errors.fetch_add(1, Ordering::Relaxed);
                self.lose(i, &e);
            }
        }
    }

    /// Whether any stick is open now.
    pub(crate) fn any_connected(&self) -> bool {
        self.sticks.iter().any(|s| s.open.is_some())
    }

    fn write_stick(
        &mut self,
        i: usize,
        layout: DeviceLayout,
        leds: &[Rgb],
        force: bool,
    ) -> Result<usize, DeviceError> {
        let Some(open) = self.sticks[i].open.as_mut() else {
            return Ok(0);
        };
        let messages = layout.frame_messages(leds);
        open.written
            .resize(messages.len(), Message::Feature(Vec::new()));
        let changed: Vec<usize> = (0..messages.len())
            .filter(|&slot| force || open.written[slot] != messages[slot])
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        // The family's pace: a light that drops what comes too fast gets the frame
        // a little later rather than not at all.
        let spacing = layout.family().min_frame_interval();
        if let Some(wait) = open
            .last_sent
            .and_then(|t| spacing.checked_sub(t.elapsed()))
        {
            std::thread::sleep(wait);
        }
        let mut count = 0;
        for slot in changed {
            let message = &messages[slot];
            if layout.model() == Some(Model::Original) {
                let previous = open.written[slot]
                    .bytes()
                    .get(1..4)
                    .map(|c| Rgb::new(c[0], c[1], c[2]));
                let bytes = message.bytes();
                let next = Rgb::new(bytes[1], bytes[2], bytes[3]);
                if let Some(nudge) =
                    previous.and_then(|p| protocol::v1_nudge(open.info.release, p, next))
                {
                    set_feature_with_retry(
                        open.transport.as_mut(),
                        &protocol::encode_color(nudge),
                    )?;
                    count += 1;
                }
            }
            send(open.transport.as_mut(), message)?;
            open.written[slot] = message.clone();
            count += 1;
        }
        open.last_sent = Some(Instant::now());
        Ok(count)
    }

    /// Sets one LED of the first light (on a BlinkStick Pro by its index over the
    /// channels), leaving the others as they are: each family's own one-LED message.
    pub fn set_one(&mut self, index: usize, colour: Rgb) -> Result<(), DeviceError> {
        let (layout, open) = self
            .sticks
            .iter_mut()
            .find_map(|s| Some((s.layout?, s.open.as_mut()?)))
            .ok_or(DeviceError::NotFound { serial: None })?;
        let message = layout
            .single_led_message(index, colour)
            .ok_or(DeviceError::Refused {
                id: 0,
                reason: format!(
                    "LED {index} is not on this {} ({} LEDs)",
                    layout.family().label(),
                    layout.led_count()
                ),
            })?;
        send(open.transport.as_mut(), &message)
    }
}

/// Sends one message the way its kind goes: feature reports through the busy
/// window's retries, output reports and datagrams once.
fn send(transport: &mut dyn Transport, message: &Message) -> Result<(), DeviceError> {
    match message {
        Message::Feature(report) => set_feature_with_retry(transport, report).map(drop),
        Message::Output(report) => transport.write(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::sim::emulator::{EmulatorBus, Firmware};
    use crate::device::wled;

    fn connected(bus: &EmulatorBus, options: DeviceOptions) -> DeviceManager {
        let mut manager = DeviceManager::new(Arc::new(bus.clone()), options);
        assert!(manager.reconnect_due());
        manager
    }

    #[test]
    fn strip_spreads_a_frame_over_sticks_in_order() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Nano, "BS000002-3.0"));
        bus.plug(Firmware::new(Model::Strip, "BS000001-3.0"));
        let sticks = ["BS000002-3.0", "BS000001-3.0"]
            .map(|s| StickSpec {
                serial: Some(s.into()),
                ..StickSpec::default()
            })
            .to_vec();
        let mut manager = connected(
            &bus,
            DeviceOptions {
                sticks,
                joining: Joining::Strip,
            },
        );
        assert_eq!(manager.led_count(), 10);
        let leds: Vec<Rgb> = (0..10).map(|i| Rgb::new(i, 0, 0)).collect();
        assert_eq!(manager.show(&leds, false), 2);
        assert_eq!(bus.leds("BS000002-3.0"), Some(leds[..2].to_vec()));
        assert_eq!(bus.leds("BS000001-3.0"), Some(leds[2..].to_vec()));
        assert_eq!(
            manager.show(&leds, false),
            0,
            "unchanged bytes are not re-sent"
        );
    }

    #[test]
    fn mirror_shows_the_same_frame_everywhere() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, "BS000001-3.0"));
        bus.plug(Firmware::new(Model::Square, "BS000002-3.0"));
        let sticks = vec![StickSpec::default(), StickSpec::default()];
        let mut manager = connected(
            &bus,
            DeviceOptions {
                sticks,
                joining: Joining::Mirror,
            },
        );
        assert_eq!(manager.led_count(), 8);
        let leds = vec![Rgb::new(3, 4, 5); 8];
        manager.show(&leds, false);
        assert_eq!(bus.leds("BS000001-3.0"), Some(leds.clone()));
        assert_eq!(bus.leds("BS000002-3.0"), Some(leds));
    }

    #[test]
    fn missing_stick_is_retried_and_unknown_model_needs_an_override() {
        let bus = EmulatorBus::new();
        let mut manager = DeviceManager::new(Arc::new(bus.clone()), DeviceOptions::default());
        assert!(!manager.reconnect_due());
        assert!(manager.next_attempt().is_some());
        assert_eq!(manager.show(&[Rgb::new(1, 1, 1)], false), 0);
        // A v3 stick reporting release 0 (as through uhid) cannot be identified…
        bus.plug(Firmware::new(Model::Strip, "BS000001-3.0").with_release(0));
        std::thread::sleep(bus.max_backoff());
        assert!(!manager.reconnect_due());
        // …unless told what it is.
        let spec = StickSpec {
            model: Some(Model::Strip),
            ..StickSpec::default()
        };
        let mut told = connected(
            &bus,
            DeviceOptions {
                sticks: vec![spec],
                joining: Joining::Strip,
            },
        );
        assert_eq!(told.show(&[Rgb::new(1, 1, 1)], false), 1);
    }

    #[test]
    fn replugged_stick_gets_the_frame_again() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, "BS000001-3.0"));
        let mut manager = connected(&bus, DeviceOptions::default());
        let leds = vec![Rgb::new(0, 9, 0); 8];
        manager.show(&leds, false);
        bus.unplug("BS000001-3.0");
        manager.show(&[Rgb::new(1, 1, 1); 8], false);
        assert_eq!(manager.status().connected.load(Ordering::Relaxed), 0);
        bus.plug(Firmware::new(Model::Strip, "BS000001-3.0"));
        assert!(manager.reconnect_due(), "retried at once after the loss");
        assert_eq!(manager.show(&leds, true), 1);
        assert_eq!(bus.leds("BS000001-3.0"), Some(leds));
        assert_eq!(manager.status().reconnects.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn original_stick_gets_a_nudge_before_a_swapped_colour() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Original, "BS000001-1.0").with_release(0x0102));
        let mut manager = connected(&bus, DeviceOptions::default());
        manager.show(&[Rgb::new(10, 20, 30)], false);
        assert_eq!(
            manager.show(&[Rgb::new(20, 10, 30)], false),
            2,
            "nudge, then the colour"
        );
        assert_eq!(bus.leds("BS000001-1.0"), Some(vec![Rgb::new(20, 10, 30)]));
    }

    #[test]
    fn lights_of_every_usb_family_form_one_strip() {
        use crate::device::sim::blink1::Blink1Firmware;
        use crate::device::sim::luxafor::LuxaforFirmware;
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Nano, "BS000001-3.0"));
        bus.plug_light(Blink1Firmware::new("3000cafe"));
        bus.plug_light(LuxaforFirmware::new("emulator:luxafor-1"));
        let sticks = ["BS000001-3.0", "3000cafe", "emulator:luxafor-1"]
            .map(|s| StickSpec {
                serial: Some(s.into()),
                ..StickSpec::default()
            })
            .to_vec();
        let mut manager = connected(
            &bus,
            DeviceOptions {
                sticks,
                joining: Joining::Strip,
            },
        );
        assert_eq!(manager.led_count(), 2 + 2 + 6);
        assert_eq!(
            manager.status().families(),
            vec![Family::BlinkStick, Family::Blink1, Family::Luxafor]
        );
        let leds: Vec<Rgb> = (0..10).map(|i| Rgb::new(i, 100 - i, 7)).collect();
        assert_eq!(manager.show(&leds, false), 1 + 2 + 6);
        assert_eq!(bus.leds("BS000001-3.0"), Some(leds[..2].to_vec()));
        assert_eq!(bus.leds("3000cafe"), Some(leds[2..4].to_vec()));
        assert_eq!(bus.leds("emulator:luxafor-1"), Some(leds[4..].to_vec()));
        // One Luxafor LED changes: one report, to that LED only.
        let mut next = leds.clone();
        next[7] = Rgb::new(1, 1, 1);
        assert_eq!(manager.show(&next, false), 1);
        assert_eq!(bus.leds("emulator:luxafor-1"), Some(next[4..].to_vec()));
        // The blink(1) says what it shows, so a restart fades on from there.
        assert_eq!(manager.read_shown(), None, "the Flag cannot be read back");
        bus.unplug("emulator:luxafor-1");
        manager.check_connected();
        assert_eq!(
            manager.status().families(),
            vec![Family::BlinkStick, Family::Blink1]
        );
        bus.plug_light(LuxaforFirmware::new("emulator:luxafor-1"));
        assert!(manager.reconnect_due());
        manager.show(&next, true);
        assert_eq!(bus.leds("emulator:luxafor-1"), Some(next[4..].to_vec()));
    }

    #[test]
    fn a_blink1_reads_back_and_sets_one_led() {
        use crate::device::sim::blink1::Blink1Firmware;
        let bus = EmulatorBus::new();
        bus.plug_light(Blink1Firmware::new("2000abcd"));
        let mut manager = connected(&bus, DeviceOptions::default());
        let leds = vec![Rgb::new(5, 6, 7), Rgb::new(8, 9, 10)];
        manager.show(&leds, false);
        assert_eq!(manager.read_shown(), Some(leds.clone()));
        manager.set_one(1, Rgb::new(1, 2, 3)).expect("one LED");
        assert_eq!(bus.leds("2000abcd"), Some(vec![leds[0], Rgb::new(1, 2, 3)]));
        let error = manager.set_one(2, Rgb::OFF).expect_err("no third LED");
        assert!(error.to_string().contains("blink(1) (2 LEDs)"), "{error}");
    }

    fn wled_manager(address: &str) -> DeviceManager {
        let address = wled::Address::parse(address).expect("address");
        DeviceManager::new(
            Arc::new(wled::WledBus::new(address).with_deadline(Duration::from_millis(500))),
            DeviceOptions::default(),
        )
    }

    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_wled_strip_takes_frames_holds_them_and_comes_back_after_power_loss() {
        use crate::device::sim::wled::{OWN_EFFECT, WledEmulator};
        let mut strip = WledEmulator::start(300).expect("emulator");
        let mut manager = wled_manager(&strip.address());
        assert!(manager.reconnect_due());
        assert_eq!(manager.led_count(), 300, "read from its JSON API");
        assert_eq!(manager.status().families(), vec![Family::Wled]);
        let leds: Vec<Rgb> = (0..300).map(|i| Rgb::new((i % 256) as u8, 1, 2)).collect();
        assert_eq!(manager.show(&leds, false), 1, "300 LEDs fit one datagram");
        eventually("the frame", || strip.leds() == leds);
        // Nothing changes for longer than the stream's timeout: keepalives hold it.
        let until = Instant::now() + Duration::from_secs(u64::from(wled::TIMEOUT_SECONDS) + 1);
        while Instant::now() < until {
            manager.refresh_due();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(strip.live(), "the keepalive held the realtime stream");
        assert_eq!(strip.leds(), leds);
        // Power loss: the next send or presence check notices; it is retried until
        // the controller is back, which then gets the frame again.
        strip.power_off();
        eventually("the loss", || {
            manager.refresh_due();
            manager.check_connected() || !manager.any_connected()
        });
        assert!(!manager.any_connected());
        assert_eq!(strip.leds(), vec![OWN_EFFECT; 300]);
        strip.power_on().expect("power on");
        eventually("the reconnect", || manager.reconnect_due());
        manager.show(&leds, true);
        eventually("the frame again", || strip.leds() == leds);
        assert_eq!(manager.status().reconnects(), 1);
    }

    #[test]
    fn hostile_or_slow_controllers_are_refused_with_a_reason() {
        use crate::device::sim::wled::{Behaviour, WledEmulator};
        let strip = WledEmulator::start(60).expect("emulator");
        let address = wled::Address::parse(&strip.address()).expect("address");
        let bus = wled::WledBus::new(address).with_deadline(Duration::from_millis(300));
        for (behaviour, says) in [
            (Behaviour::Garbage, "not JSON"),
            (Behaviour::ClaimsLeds(1 << 40), "claims 1099511627776 LEDs"),
            (Behaviour::ClaimsLeds(0), "claims 0 LEDs"),
            (Behaviour::Endless, "larger than"),
            (Behaviour::Silent, "did not answer within 0.3 s"),
            (
                Behaviour::Slow(Duration::from_secs(1)),
                "did not answer within",
            ),
        ] {
            strip.set_behaviour(behaviour.clone());
            let started = Instant::now();
            let error = bus.list().expect_err("refused").to_string();
            assert!(error.contains(says), "{behaviour:?}: {error}");
            assert!(!error.contains('\u{1b}'), "{error}");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{behaviour:?} held the caller {:?}",
                started.elapsed()
            );
        }
        // A count that lies low is believed (fewer LEDs are driven); the strip
        // ignores nothing podlight sends.
        strip.set_behaviour(Behaviour::ClaimsLeds(10));
        assert_eq!(bus.list().expect("listed")[0].led_count, Some(10));
        strip.set_behaviour(Behaviour::Honest);
        assert_eq!(bus.list().expect("listed")[0].led_count, Some(60));
        // Nobody there at all: refused at once, not after the deadline.
        drop(strip);
        let error = bus.list().expect_err("closed port").to_string();
        assert!(error.contains("did not answer"), "{error}");
    }
}
