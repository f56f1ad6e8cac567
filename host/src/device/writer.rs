//! The frame writer: takes target frames from anywhere without blocking, fades to
//! them on its own thread at up to 50 frames per second, and keeps the sticks
//! showing the current frame across unplugs.
//!
//! A new target replaces any target not yet started (bursts coalesce; stale frames
//! are never queued) and a fade in progress is retargeted from the colour shown now.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fade::{Fade, cap_brightness};
use super::manager::{DeviceManager, DeviceStatus};
use crate::frame::Rgb;
use crate::lock::lock;

#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// How long a change of colour takes; zero switches at once.
    pub fade: Duration,
    /// Shortest time between two frames written (20 ms: 50 fps, the firmware's pace).
    pub frame_interval: Duration,
    /// No channel goes above this (0–255).
    pub brightness_cap: Option<u8>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            fade: Duration::from_millis(300),
            frame_interval: Duration::from_millis(20),
            brightness_cap: None,
        }
    }
}

/// Called with every frame written, and whether it is the target (not a fade step).
pub type FrameObserver = Box<dyn FnMut(&[Rgb], bool) + Send>;

#[derive(Default)]
struct Slot {
    target: Option<Vec<Rgb>>,
    stop: Option<bool>,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    shown: Mutex<Vec<Rgb>>,
}

/// Handle to the writer thread. Dropping it stops the thread and leaves the LEDs.
pub struct FrameWriter {
    shared: Arc<Shared>,
    status: Arc<DeviceStatus>,
    thread: Option<JoinHandle<()>>,
    brightness_cap: Option<u8>,
}

impl FrameWriter {
    pub fn spawn(
        manager: DeviceManager,
        options: WriterOptions,
        observer: Option<FrameObserver>,
    ) -> FrameWriter {
        let shared = Arc::new(Shared {
            slot: Mutex::default(),
            wake: Condvar::new(),
            shown: Mutex::default(),
        });
        let status = manager.status();
        let brightness_cap = options.brightness_cap;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("frame-writer".into())
            .spawn(move || WriterLoop::new(manager, options, observer, thread_shared).run())
            .map_err(|e| tracing::error!(error = %e, "cannot start the frame writer thread; the LEDs will not change"))
            .ok();
        FrameWriter {
            shared,
            status,
            thread,
            brightness_cap,
        }
    }

    /// Shows `leds` (through the usual fade, under the brightness cap) and waits up to
    /// `timeout` until the sticks do: what a one-shot command needs.
    pub fn show(&self, leds: Vec<Rgb>, timeout: Duration) -> bool {
        let shown: Vec<Rgb> = match self.brightness_cap {
            Some(cap) => leds
                .iter()
                .map(|&c| super::fade::cap_brightness(c, cap))
                .collect(),
            None => leds.clone(),
        };
        self.set_target(leds);
        self.wait_until_shown(&shown, timeout)
    }

    /// Sets what the LEDs should show. Returns at once.
    pub fn set_target(&self, leds: Vec<Rgb>) {
        lock(&self.shared.slot).target = Some(leds);
        self.shared.wake.notify_one();
    }

    /// The frame last written to the sticks (mid-fade, the fade step).
    pub fn shown(&self) -> Vec<Rgb> {
        lock(&self.shared.shown).clone()
    }

    pub fn status(&self) -> Arc<DeviceStatus> {
        Arc::clone(&self.status)
    }

    /// Waits until the sticks show `leds` (after any fade), up to `timeout`.
    pub(crate) fn wait_until_shown(&self, leds: &[Rgb], timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while *lock(&self.shared.shown) != leds {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Turns the LEDs off (through the usual fade) and waits up to `timeout` until
    /// they are; for a writer still shared with others, which cannot be shut down.
    pub(crate) fn turn_off(&self, timeout: Duration) -> bool {
        let off = vec![Rgb::OFF; self.shown().len()];
        self.set_target(off.clone());
        self.wait_until_shown(&off, timeout)
    }

    /// Stops after the write in progress; with `leds_off`, turns the LEDs off first.
    pub fn shutdown(mut self, leds_off: bool) {
        self.stop(leds_off);
    }

    fn stop(&mut self, leds_off: bool) {
        lock(&self.shared.slot).stop = Some(leds_off);
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.stop(false);
    }
}

struct WriterLoop {
    manager: DeviceManager,
    options: WriterOptions,
    observer: Option<FrameObserver>,
    shared: Arc<Shared>,
    /// What the sticks show now.
    current: Vec<Rgb>,
    fade: Option<(Fade, Instant)>,
    /// When the last frame was written or the last fade step taken: the next one is
    /// due no sooner than a frame interval later.
    last_step: Option<Instant>,
    last_presence_check: Instant,
}

/// How often an idle writer asks whether its lights are still there (and sends the
/// frame again to those that need it: see [`DeviceManager::refresh_due`]).
const PRESENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

impl WriterLoop {
    fn new(
        manager: DeviceManager,
        options: WriterOptions,
        observer: Option<FrameObserver>,
        shared: Arc<Shared>,
    ) -> Self {
        WriterLoop {
            manager,
            options,
            observer,
            shared,
            current: Vec::new(),
            fade: None,
            last_step: None,
            last_presence_check: Instant::now(),
        }
    }

    fn run(mut self) {
        self.manager.reconnect_due();
        if let Some(shown) = self.manager.read_shown() {
            // Where the first fade starts; nothing new to draw.
            self.record_shown(shown);
        }
        loop {
            let (target, stop) = self.wait();
            if let Some(leds_off) = stop {
                if leds_off {
                    let off = vec![Rgb::OFF; self.manager.led_count()];
                    self.manager.show(&off, true);
                    self.publish(off, true);
                }
                return;
            }
            if self.last_presence_check.elapsed() >= PRESENCE_CHECK_INTERVAL {
                self.manager.check_connected();
                self.manager.refresh_due();
                self.last_presence_check = Instant::now();
            }
            let reconnected = self.manager.reconnect_due();
            if let Some(target) = target {
                self.retarget(target);
            }
            let now = Instant::now();
            let (frame, settled) = match &self.fade {
                Some((fade, started)) => {
                    let elapsed = now.saturating_duration_since(*started);
                    (fade.at(elapsed), fade.done(elapsed))
                }
                None => (self.current.clone(), true),
            };
            let fading = self.fade.is_some();
            if fading {
                // The step is taken whether or not it changes a colour: the next one
                // is due a frame interval from now, not at once.
                self.last_step = Some(now);
            }
            if settled {
                self.fade = None;
            }
            if frame != self.current || reconnected {
                self.manager.show(&frame, reconnected);
                self.last_step = Some(now);
                self.publish(frame, settled);
            } else if fading && settled {
                // The last step already showed the target: nothing to write, but
                // observers still learn that the fade has settled.
                self.publish(frame, true);
            }
        }
    }

    /// Starts a fade from what is shown now to `target` (capped), unless the sticks
    /// already show it or a fade to it is already running: an unchanged frame costs
    /// nothing, and repeating a target does not restart its fade.
    fn retarget(&mut self, target: Vec<Rgb>) {
        let capped: Vec<Rgb> = target.iter().map(|&c| self.cap(c)).collect();
        if capped == self.current {
            self.fade = None;
            return;
        }
        if self
            .fade
            .as_ref()
            .is_some_and(|(fade, _)| fade.target() == capped.as_slice())
        {
            return;
        }
        self.fade = Some((
            Fade::new(&self.current, capped, self.options.fade),
            Instant::now(),
        ));
    }

    fn cap(&self, c: Rgb) -> Rgb {
        self.options
            .brightness_cap
            .map_or(c, |cap| cap_brightness(c, cap))
    }

    fn publish(&mut self, frame: Vec<Rgb>, settled: bool) {
        if let Some(observer) = self.observer.as_mut() {
            observer(&frame, settled);
        }
        self.record_shown(frame);
    }

    fn record_shown(&mut self, frame: Vec<Rgb>) {
        lock(&self.shared.shown).clone_from(&frame);
        self.current = frame;
    }

    /// Sleeps until there is work: a new target (no sooner than one frame interval
    /// after the last step), the next fade step, a reconnect attempt, a presence
    /// check, or a stop.
    fn wait(&mut self) -> (Option<Vec<Rgb>>, Option<bool>) {
        let mut slot = lock(&self.shared.slot);
        loop {
            if slot.stop.is_some() {
                return (None, slot.stop);
            }
            let now = Instant::now();
            let next_frame = self
                .last_step
                .map_or(now, |t| t + self.options.frame_interval);
            if slot.target.is_some() && now >= next_frame {
                return (slot.target.take(), None);
            }
            let mut wake_at = self.manager.next_attempt();
            if self.manager.any_connected() {
                let check_at = self.last_presence_check + PRESENCE_CHECK_INTERVAL;
                wake_at = Some(wake_at.map_or(check_at, |t| t.min(check_at)));
            }
            if self.fade.is_some() || slot.target.is_some() {
                wake_at = Some(wake_at.map_or(next_frame, |t| t.min(next_frame)));
            }
            match wake_at {
                Some(at) if at <= now => return (None, None),
                Some(at) => {
                    slot = self
                        .shared
                        .wake
                        .wait_timeout(slot, at - now)
                        .map_or_else(|e| e.into_inner().0, |r| r.0)
                }
                None => {
                    slot = self
                        .shared
                        .wake
                        .wait(slot)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::manager::DeviceOptions;
    use crate::device::protocol::Model;
    use crate::device::sim::emulator::{EmulatorBus, Firmware};
    use std::sync::atomic::Ordering;

    const SERIAL: &str = "BS000001-3.0";

    fn writer(bus: &EmulatorBus, options: WriterOptions) -> FrameWriter {
        FrameWriter::spawn(
            DeviceManager::new(Arc::new(bus.clone()), DeviceOptions::default()),
            options,
            None,
        )
    }

    /// A writer that switches colours at once.
    fn instant_writer(bus: &EmulatorBus) -> FrameWriter {
        writer(
            bus,
            WriterOptions {
                fade: Duration::ZERO,
                ..WriterOptions::default()
            },
        )
    }

    /// A strip behind an instant writer, already showing `frame`.
    fn strip_showing(frame: &[Rgb]) -> (EmulatorBus, FrameWriter) {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let w = instant_writer(&bus);
        w.set_target(frame.to_vec());
        wait_for("the frame", || bus.leds(SERIAL).as_deref() == Some(frame));
        (bus, w)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn writes(bus: &EmulatorBus) -> usize {
        bus.stick(SERIAL).map_or(0, |s| lock(&s).received().len())
    }

    #[test]
    fn fade_ends_exactly_on_target_in_a_bounded_number_of_writes() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let w = writer(&bus, WriterOptions::default());
        let target = vec![Rgb::new(200, 100, 0); 8];
        let start = Instant::now();
        w.set_target(target.clone());
        wait_for("the target", || bus.leds(SERIAL) == Some(target.clone()));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(280), "it faded: {took:?}");
        let n = writes(&bus);
        assert!(
            (5..=17).contains(&n),
            "300 ms at 50 fps is at most 16 steps: {n}"
        );
    }

    #[test]
    fn the_first_fade_starts_from_what_the_stick_shows() {
        let bus = EmulatorBus::new();
        let stick = bus.plug(Firmware::new(Model::Strip, SERIAL));
        let lit = vec![Rgb::new(200, 0, 0); 8];
        let report = crate::device::protocol::Layout::new(Model::Strip, None).frame_reports(&lit);
        lock(&stick)
            .set_feature(&report[0], Instant::now() - Duration::from_secs(1))
            .expect("the stick takes the frame");
        let w = writer(&bus, WriterOptions::default());
        let target = vec![Rgb::new(0, 0, 200); 8];
        w.set_target(target.clone());
        wait_for("the target", || bus.leds(SERIAL) == Some(target.clone()));
        let first_write = lock(&stick).received()[1].1.clone();
        // GRB: the first step of the fade is still mostly red, not near off.
        assert!(first_write[3] > 150, "{first_write:?}");
    }

    #[test]
    fn burst_of_targets_coalesces_to_the_last() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let w = instant_writer(&bus);
        for i in 0..1000u32 {
            w.set_target(vec![Rgb::new((i % 256) as u8, (i / 256) as u8, 1); 8]);
        }
        let last = vec![Rgb::new((999 % 256) as u8, 3, 1); 8];
        wait_for("the last target", || bus.leds(SERIAL) == Some(last.clone()));
        std::thread::sleep(Duration::from_millis(60));
        let n = writes(&bus);
        assert!(n <= 5, "a handful of writes, not 1000: {n}");
        assert_eq!(w.shown(), last);
    }

    #[test]
    fn unchanged_target_writes_nothing() {
        let frame = vec![Rgb::new(1, 2, 3); 8];
        let (bus, w) = strip_showing(&frame);
        let before = writes(&bus);
        for _ in 0..5 {
            w.set_target(frame.clone());
            std::thread::sleep(Duration::from_millis(25));
        }
        assert_eq!(writes(&bus), before);
    }

    /// CPU time the writer's thread has used so far.
    fn writer_cpu(w: &FrameWriter) -> Duration {
        use std::os::unix::thread::JoinHandleExt;
        let thread = w.thread.as_ref().expect("the writer thread runs");
        let mut clock: libc::clockid_t = 0;
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the thread is alive (joined only on drop) and both pointers are valid.
        unsafe {
            assert_eq!(
                libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock),
                0
            );
            assert_eq!(libc::clock_gettime(clock, &mut now), 0);
        }
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    #[test]
    fn unchanged_targets_and_idle_time_cost_next_to_no_cpu() {
        let frame = vec![Rgb::new(1, 2, 3); 8];
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        // The default fade: an unchanged target used to restart a 300 ms fade that
        // spun the thread while writing nothing.
        let w = writer(&bus, WriterOptions::default());
        w.set_target(frame.clone());
        wait_for("the frame", || {
            bus.leds(SERIAL).as_deref() == Some(&frame[..])
        });
        let before = writer_cpu(&w);
        for _ in 0..20 {
            w.set_target(frame.clone());
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(400));
        let used = writer_cpu(&w) - before;
        // Spinning costs the whole second; twenty wakeups and a few presence checks
        // cost well under a millisecond each.
        assert!(used < Duration::from_millis(100), "writer CPU: {used:?}");
    }

    #[test]
    fn repeating_the_target_of_a_running_fade_does_not_restart_it() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let w = writer(&bus, WriterOptions::default());
        let target = vec![Rgb::new(0, 200, 0); 8];
        let start = Instant::now();
        w.set_target(target.clone());
        // Resent every 40 ms, as an animated policy's unchanged frame is.
        while bus.leds(SERIAL) != Some(target.clone()) {
            assert!(start.elapsed() < Duration::from_secs(5), "never reached");
            w.set_target(target.clone());
            std::thread::sleep(Duration::from_millis(40));
        }
        let n = writes(&bus);
        assert!(n <= 17, "one 300 ms fade, not a restarted one: {n} writes");
    }

    #[test]
    fn brightness_cap_applies_to_targets() {
        let bus = EmulatorBus::new();
        bus.plug(Firmware::new(Model::Nano, SERIAL));
        let options = WriterOptions {
            fade: Duration::ZERO,
            brightness_cap: Some(51),
            ..WriterOptions::default()
        };
        let w = writer(&bus, options);
        w.set_target(vec![Rgb::new(255, 0, 255); 2]);
        wait_for("capped colour", || {
            bus.leds(SERIAL) == Some(vec![Rgb::new(51, 0, 51); 2])
        });
    }

    /// Shows a frame, pulls the stick out, optionally sets a new target while it is
    /// gone, plugs it back in and checks that the latest frame is back within a second.
    fn replug(target_while_gone: Option<Vec<Rgb>>) {
        let frame = vec![Rgb::new(0, 40, 0); 8];
        let (bus, w) = strip_showing(&frame);
        bus.unplug(SERIAL);
        if let Some(target) = &target_while_gone {
            w.set_target(target.clone());
        }
        wait_for("the loss to be noticed", || {
            w.status().connected.load(Ordering::Relaxed) == 0
        });
        let latest = target_while_gone.unwrap_or(frame);
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        let replugged = Instant::now();
        wait_for("the frame on the new stick", || {
            bus.leds(SERIAL) == Some(latest.clone())
        });
        assert!(
            replugged.elapsed() < Duration::from_secs(1),
            "{:?}",
            replugged.elapsed()
        );
        assert_eq!(w.status().reconnects.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn replug_resends_the_current_frame_within_a_second() {
        replug(Some(vec![Rgb::new(40, 0, 0); 8]));
    }

    #[test]
    fn stick_pulled_out_while_the_frame_holds_still_gets_it_again() {
        // No write fails: only the presence check can notice.
        replug(None);
    }

    #[test]
    fn no_stick_at_start_then_one_arrives() {
        let bus = EmulatorBus::new();
        let w = instant_writer(&bus);
        let frame = vec![Rgb::new(9, 9, 9); 8];
        w.set_target(frame.clone());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(w.status().connected.load(Ordering::Relaxed), 0);
        bus.plug(Firmware::new(Model::Strip, SERIAL));
        wait_for("the frame", || bus.leds(SERIAL) == Some(frame.clone()));
    }

    #[test]
    fn shutdown_turns_the_leds_off() {
        let frame = vec![Rgb::new(5, 5, 5); 8];
        let (bus, w) = strip_showing(&frame);
        w.shutdown(true);
        assert_eq!(bus.leds(SERIAL), Some(vec![Rgb::OFF; 8]));
    }
}
