//! Every light family on its emulator, the BlinkStick (the reference device) as the
//! baseline in the same run:
//! - write latency: one changed frame from `DeviceManager::show` until the light shows
//!   it (USB emulators take reports synchronously; the WLED emulator gets a UDP
//!   datagram on loopback and applies it on its own thread);
//! - frames per second sustained for 3 s through the manager, with the family's own
//!   pacing (WLED: 20 ms between frames, its render rate), and the frames the light
//!   actually applied; WLED with 60, 300 and 1,000 LEDs (1,000 takes three datagrams);
//! - reconnect: a light unplugged (WLED: powered off) while the frame writer holds a
//!   frame, then back: time from its return until it shows the frame again.
//!
//! Run: `cargo bench -p podlight --bench device_families`

use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::device::protocol::Model;
use podlight::device::sim::blink1::Blink1Firmware;
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::device::sim::luxafor::LuxaforFirmware;
use podlight::device::sim::wled::WledEmulator;
use podlight::device::wled::{Address, WledBus};
use podlight::device::{Bus, DeviceManager, DeviceOptions, FrameWriter, StickSpec, WriterOptions};
use podlight::frame::Rgb;

const BLINKSTICK: &str = "BS000001-3.1";
const BLINK1: &str = "3000cafe";
const LUXAFOR: &str = "/dev/hidraw-bench";

/// A light under test: how to reach it and how to read what it shows.
struct Light {
    name: String,
    /// Its emulator takes as long per frame as the light would (or the family's
    /// own pacing applies), so frames per second mean something.
    paced: bool,
    bus: Arc<dyn Bus>,
    spec: StickSpec,
    shows: Box<dyn Fn() -> Vec<Rgb>>,
    /// Reports or datagrams it has applied so far.
    applied: Box<dyn Fn() -> usize>,
    /// Takes it away and brings it back.
    unplug: Box<dyn FnMut()>,
    plug: Box<dyn FnMut()>,
}

fn spec(serial: Option<&str>, model: Option<Model>) -> StickSpec {
    StickSpec {
        serial: serial.map(str::to_string),
        model,
        led_count: None,
    }
}

fn usb_light(name: &str, paced: bool, serial: &'static str, make: fn() -> Box<dyn Plug>) -> Light {
    let bus = EmulatorBus::new();
    make().plug(&bus);
    let (shows_bus, applied_bus, unplug_bus, plug_bus) =
        (bus.clone(), bus.clone(), bus.clone(), bus.clone());
    Light {
        name: name.to_string(),
        paced,
        bus: Arc::new(bus),
        spec: spec(Some(serial), None),
        shows: Box::new(move || leds_of(&shows_bus, serial)),
        applied: Box::new(move || applied_of(&applied_bus, serial)),
        unplug: Box::new(move || unplug_bus.unplug(serial)),
        plug: Box::new(move || make().plug(&plug_bus)),
    }
}

/// A fresh emulated USB light of one family, plugged into a bus.
trait Plug {
    fn plug(self: Box<Self>, bus: &EmulatorBus);
}

impl Plug for Firmware {
    fn plug(self: Box<Self>, bus: &EmulatorBus) {
        bus.plug(*self);
    }
}

impl Plug for Blink1Firmware {
    fn plug(self: Box<Self>, bus: &EmulatorBus) {
        bus.plug_light(*self);
    }
}

impl Plug for LuxaforFirmware {
    fn plug(self: Box<Self>, bus: &EmulatorBus) {
        bus.plug_light(*self);
    }
}

fn leds_of(bus: &EmulatorBus, serial: &str) -> Vec<Rgb> {
    if let Some(stick) = bus.stick(serial) {
        return stick.lock().map(|f| f.leds()).unwrap_or_default();
    }
    bus.light(serial)
        .map(|l| l.lock().map(|l| l.leds()).unwrap_or_default())
        .unwrap_or_default()
}

fn applied_of(bus: &EmulatorBus, serial: &str) -> usize {
    if let Some(stick) = bus.stick(serial) {
        return stick.lock().map(|f| f.received().len()).unwrap_or(0);
    }
    bus.light(serial)
        .map(|l| l.lock().map(|l| l.received().len()).unwrap_or(0))
        .unwrap_or(0)
}

fn wled_light(leds: usize) -> Light {
    let strip = Arc::new(std::sync::Mutex::new(
        WledEmulator::start(leds).expect("emulated WLED controller"),
    ));
    let address = strip.lock().map(|s| s.address()).expect("address");
    let bus = WledBus::new(Address::parse(&address).expect("address"));
    let (a, b, c, d) = (
        Arc::clone(&strip),
        Arc::clone(&strip),
        Arc::clone(&strip),
        Arc::clone(&strip),
    );
    Light {
        name: format!("WLED, {leds} LEDs"),
        paced: true,
        bus: Arc::new(bus),
        spec: spec(None, None),
        shows: Box::new(move || a.lock().map(|s| s.leds()).unwrap_or_default()),
        applied: Box::new(move || b.lock().map(|s| s.datagrams() as usize).unwrap_or(0)),
        unplug: Box::new(move || {
            if let Ok(mut s) = c.lock() {
                s.power_off();
            }
        }),
        plug: Box::new(move || {
            if let Ok(mut s) = d.lock() {
                s.power_on().expect("power on");
            }
        }),
    }
}

fn lights() -> Vec<Light> {
    let mut all = vec![
        usb_light("BlinkStick Strip (baseline)", true, BLINKSTICK, || {
            Box::new(Firmware::new(Model::Strip, BLINKSTICK))
        }),
        usb_light("blink(1) mk3", false, BLINK1, || {
            Box::new(Blink1Firmware::new(BLINK1))
        }),
        usb_light("Luxafor Flag", false, LUXAFOR, || {
            Box::new(LuxaforFirmware::new(LUXAFOR))
        }),
    ];
    for leds in [60, 300, 1000] {
        all.push(wled_light(leds));
    }
    all
}

fn manager(light: &Light) -> DeviceManager {
    let mut manager = DeviceManager::new(
        Arc::clone(&light.bus),
        DeviceOptions {
            sticks: vec![light.spec.clone()],
            ..DeviceOptions::default()
        },
    );
    assert!(manager.reconnect_due(), "{}: connects", light.name);
    manager
}

fn frame(leds: usize, i: usize) -> Vec<Rgb> {
    (0..leds)
        .map(|led| Rgb::new((i * 7 + led) as u8, (i * 13) as u8, 1 + (i % 200) as u8))
        .collect()
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return None;
        }
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    Some(start.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One changed frame from `show` until the light shows it, 200 times, spaced past
/// the family's pacing so that only the write is measured.
fn latency(light: &Light) -> (Duration, Duration) {
    let mut manager = manager(light);
    let leds = manager.led_count();
    let mut samples = Vec::new();
    for i in 0..200 {
        let want = frame(leds, i);
        std::thread::sleep(Duration::from_millis(25));
        let start = Instant::now();
        manager.show(&want, false);
        wait_for(Duration::from_secs(5), || (light.shows)() == want)
            .unwrap_or_else(|| panic!("{}: frame {i} never shown", light.name));
        samples.push(start.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Frames sent and applied per second over 3 s of back-to-back changes.
fn throughput(light: &Light) -> (f64, f64) {
    let mut manager = manager(light);
    let leds = manager.led_count();
    let applied_before = (light.applied)();
    let start = Instant::now();
    let mut sent = 0usize;
    let mut per_frame = 1usize;
    while start.elapsed() < Duration::from_secs(3) {
        let written = manager.show(&frame(leds, sent), false);
        per_frame = per_frame.max(written);
        sent += 1;
    }
    let took = start.elapsed().as_secs_f64();
    // Let the last datagrams land before counting.
    std::thread::sleep(Duration::from_millis(100));
    let applied = ((light.applied)() - applied_before) / per_frame.max(1);
    (sent as f64 / took, applied as f64 / took)
}

/// How long a light stays away before it comes back: a hand replugging a stick, a
/// controller rebooting. Reconnect attempts back off while it is away (up to 400 ms
/// on USB, 2 s over the network), so the time to come back depends on it.
const AWAY: Duration = Duration::from_secs(3);

/// Time from the light's return until it shows the held frame again: median and
/// worst of five returns, each after a slightly different time away (a fixed one
/// would fall on the same point of the retry schedule every time).
fn reconnect(light: &mut Light) -> (Duration, Duration) {
    let manager = manager(light);
    let leds = manager.led_count();
    let writer = FrameWriter::spawn(
        manager,
        WriterOptions {
            fade: Duration::ZERO,
            ..WriterOptions::default()
        },
        None,
    );
    let want = frame(leds, 7);
    assert!(
        writer.show(want.clone(), Duration::from_secs(10)),
        "{}",
        light.name
    );
    let status = writer.status();
    let mut samples = Vec::new();
    for jitter_ms in [0, 137, 291, 433, 577] {
        (light.unplug)();
        wait_for(Duration::from_secs(30), || status.connected() == 0)
            .unwrap_or_else(|| panic!("{}: the loss is never noticed", light.name));
        std::thread::sleep(AWAY + Duration::from_millis(jitter_ms));
        assert_ne!((light.shows)(), want, "{}: gone means dark", light.name);
        let back = Instant::now();
        (light.plug)();
        wait_for(Duration::from_secs(30), || (light.shows)() == want)
            .unwrap_or_else(|| panic!("{}: the frame never comes back", light.name));
        samples.push(back.elapsed());
    }
    writer.shutdown(false);
    samples.sort();
    (samples[2], samples[4])
}

fn main() {
    println!("Device families on their emulators (BlinkStick: the baseline, same run)\n");
    println!(
        "{:<28} {:>11} {:>11} {:>10} {:>10} {:>20}",
        "light", "write p50", "write p99", "frames/s", "applied/s", "reconnect p50/max"
    );
    for mut light in lights() {
        let (p50, p99) = latency(&light);
        // The blink(1) and Luxafor emulators model no USB transfer time (the
        // BlinkStick's models its firmware clocking out LEDs): their frame rate here
        // would measure the emulator, not the light.
        let rate = if light.paced {
            let (sent, applied) = throughput(&light);
            (format!("{sent:.1}"), format!("{applied:.1}"))
        } else {
            ("-".to_string(), "-".to_string())
        };
        let (back, worst) = reconnect(&mut light);
        println!(
            "{:<28} {:>8.3} ms {:>8.3} ms {:>10} {:>10} {:>9.0} / {:>4.0} ms",
            light.name,
            ms(p50),
            ms(p99),
            rate.0,
            rate.1,
            ms(back),
            ms(worst)
        );
    }
    println!(
        "\n(reconnect: from the light's return after {} s away)",
        AWAY.as_secs()
    );
}
