//! The frame writer against a reproduction of the prototype's behaviour, on the
//! emulator: time from a target set to the final colour shown, and USB writes issued,
//! for one change and for a burst of 100 changes.
//!
//! The prototype morphed every LED in turn for each event: 50 linear steps with a
//! sleep of duration/51 after each, then the target (≈52 writes and ≈1 s per LED),
//! blocking, so events queued behind each other. To keep the run short it runs here
//! 10x faster (steps of ≈2 ms instead of ≈20 ms) and on 10 of the 100 burst events;
//! its times are scaled back up and marked `scaled`. Write counts are exact.
//!
//! Then the writer's CPU time, against a reproduction of the writer before its
//! wake-ups were fixed (`support/spinning_writer.rs`): per unchanged evaluation (the
//! same frame set again, as after most pod changes), per second of a 25 fps animation,
//! and per minute of idling (measured over 10 s).
//!
//! Run: `cargo bench -p podlight --bench device_writer`

use podlight_testsupport::prototype;
use podlight_testsupport::spinning_writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use podlight::device::protocol::Model;
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::device::{Bus, DeviceManager, DeviceOptions, FrameWriter, WriterOptions};
use podlight::frame::Rgb;

const SERIAL: &str = "BS000001-3.0";
const LEDS: usize = 8;
const SPEEDUP: u32 = 10;

fn stick() -> EmulatorBus {
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    bus
}

fn writes(bus: &EmulatorBus) -> usize {
    bus.stick(SERIAL)
        .map_or(0, |s| s.lock().map(|f| f.received().len()).unwrap_or(0))
}

fn colour(i: usize) -> Rgb {
    Rgb::new(
        (i * 37 % 256) as u8,
        (i * 91 % 256) as u8,
        (i * 13 % 256) as u8,
    )
}

/// The prototype: for each event, each LED morphs from its colour to the target.
fn prototype(events: &[Rgb]) -> (Duration, usize) {
    let bus = stick();
    let mut transport = bus.open(SERIAL).expect("opens");
    let mut shown = [Rgb::OFF; LEDS];
    let start = Instant::now();
    for &target in events {
        prototype::morph_all(
            transport.as_mut(),
            &mut shown,
            target,
            Duration::from_millis(1000) / SPEEDUP,
        );
    }
    assert_eq!(
        bus.leds(SERIAL),
        Some(vec![*events.last().expect("events"); LEDS])
    );
    (start.elapsed() * SPEEDUP, writes(&bus))
}

/// podlight's writer: targets go in as they come; measured until the last shows.
fn podlight(events: &[Rgb], spacing: Duration) -> (Duration, usize) {
    let bus = stick();
    let manager = DeviceManager::new(Arc::new(bus.clone()), DeviceOptions::default());
    let writer = FrameWriter::spawn(manager, WriterOptions::default(), None);
    // Connected and idle before timing.
    writer.set_target(vec![Rgb::OFF; LEDS]);
    std::thread::sleep(Duration::from_millis(50));
    let before = writes(&bus);
    let last = vec![*events.last().expect("events"); LEDS];
    let start = Instant::now();
    for &c in events {
        writer.set_target(vec![c; LEDS]);
        if !spacing.is_zero() {
            std::thread::sleep(spacing);
        }
    }
    while bus.leds(SERIAL) != Some(last.clone()) {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed();
    (took, writes(&bus) - before)
}

/// CPU time this process has used (all threads; the bench's own thread mostly sleeps).
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// CPU used while `work` runs.
fn cpu_during(work: impl FnOnce()) -> Duration {
    let before = process_cpu();
    work();
    process_cpu() - before
}

/// Writer CPU: per unchanged target, per second of a 25 fps animation, per idle
/// minute, for a writer behind `set_target`.
fn writer_cpu(set_target: &dyn Fn(Vec<Rgb>)) -> (Duration, Duration, Duration) {
    const UNCHANGED: u32 = 20;
    const ANIMATION: Duration = Duration::from_secs(2);
    const IDLE: Duration = Duration::from_secs(10);
    let steady = vec![colour(7); LEDS];
    set_target(steady.clone());
    std::thread::sleep(Duration::from_millis(500));
    let unchanged = cpu_during(|| {
        for _ in 0..UNCHANGED {
            set_target(steady.clone());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(400));
    }) / UNCHANGED;
    let animation = cpu_during(|| {
        let start = Instant::now();
        let mut i = 0usize;
        while start.elapsed() < ANIMATION {
            set_target(vec![colour(i); LEDS]);
            i += 1;
            std::thread::sleep(Duration::from_millis(40));
        }
    })
    .div_f64(ANIMATION.as_secs_f64());
    std::thread::sleep(Duration::from_millis(500));
    let idle = cpu_during(|| std::thread::sleep(IDLE)).mul_f64(60.0 / IDLE.as_secs_f64());
    (unchanged, animation, idle)
}

fn cpu_table() {
    let bus = stick();
    let baseline = {
        let manager = DeviceManager::new(Arc::new(bus.clone()), DeviceOptions::default());
        let writer = spinning_writer::SpinningWriter::spawn(
            manager,
            WriterOptions::default().fade,
            WriterOptions::default().frame_interval,
        );
        writer_cpu(&|leds| writer.set_target(leds))
    };
    let bus = stick();
    let fixed = {
        let manager = DeviceManager::new(Arc::new(bus.clone()), DeviceOptions::default());
        let writer = FrameWriter::spawn(manager, WriterOptions::default(), None);
        writer_cpu(&|leds| writer.set_target(leds))
    };
    println!("\nWriter CPU time (300 ms fade, 50 fps cap; process CPU clock)");
    println!(
        "{:<34} | {:>16} | {:>16}",
        "case", "spinning (before)", "podlight (now)"
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!(
        "{:<34} | {:>16} | {:>16}",
        "per unchanged evaluation",
        ms(baseline.0),
        ms(fixed.0)
    );
    println!(
        "{:<34} | {:>16} | {:>16}",
        "per second of a 25 fps animation",
        ms(baseline.1),
        ms(fixed.1)
    );
    println!(
        "{:<34} | {:>16} | {:>16}",
        "per idle minute",
        ms(baseline.2),
        ms(fixed.2)
    );
}

fn main() {
    let one = [colour(1)];
    let burst: Vec<Rgb> = (1..=100).map(colour).collect();

    let (p1_time, p1_writes) = podlight(&one, Duration::ZERO);
    let (pb_time, pb_writes) = podlight(&burst, Duration::ZERO);
    let (ps_time, ps_writes) = podlight(&burst, Duration::from_millis(5));
    let (o1_time, o1_writes) = prototype(&one);
    let (o10_time, o10_writes) = prototype(&burst[..10]);
    let ob_time = o10_time * 10;
    let ob_writes = o10_writes * 10;

    println!("Strip, {LEDS} LEDs, emulated firmware (busy window, exact report sizes)");
    println!("{:<44} | {:>14} | {:>10}", "case", "to final", "USB writes");
    let row = |name: &str, d: Duration, w: usize, note: &str| {
        println!("{name:<44} | {:>12.3} s | {w:>10} {note}", d.as_secs_f64());
    };
    row("podlight: one change (300 ms fade)", p1_time, p1_writes, "");
    row(
        "prototype: one change (morph per LED)",
        o1_time,
        o1_writes,
        "(time scaled)",
    );
    row(
        "podlight: burst of 100 changes at once",
        pb_time,
        pb_writes,
        "",
    );
    row(
        "podlight: 100 changes, one every 5 ms",
        ps_time,
        ps_writes,
        "",
    );
    row(
        "prototype: burst of 100 changes",
        ob_time,
        ob_writes,
        "(10 run, x10, time scaled)",
    );
    println!(
        "\nratios (prototype / podlight): one change {:.0}x time, {:.1}x writes; burst {:.0}x time, {:.0}x writes",
        o1_time.as_secs_f64() / p1_time.as_secs_f64(),
        o1_writes as f64 / p1_writes as f64,
        ob_time.as_secs_f64() / pb_time.as_secs_f64(),
        ob_writes as f64 / pb_writes as f64,
    );
    cpu_table();
}
