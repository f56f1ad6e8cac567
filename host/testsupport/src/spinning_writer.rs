//! The frame writer as it was before its wake-ups were fixed, reproduced as a
//! baseline: every target (even an unchanged one) restarted a fade, and the next fade
//! step was timed from the last *write*. A fade whose steps wrote nothing therefore
//! made the next step due at once, and the thread spun for the whole fade. Only the
//! scheduling is reproduced (one stick that stays plugged in: no presence checks or
//! reconnects), which is where the CPU went.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podlight::device::DeviceManager;
use podlight::device::fade::Fade;
use podlight::frame::Rgb;

#[derive(Default)]
struct Slot {
    target: Option<Vec<Rgb>>,
    stop: bool,
}

/// Handle to the baseline writer's thread.
pub struct SpinningWriter {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl SpinningWriter {
    pub fn spawn(mut manager: DeviceManager, fade: Duration, interval: Duration) -> Self {
        let shared = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            manager.reconnect_due();
            let (slot, wake) = &*thread_shared;
            let mut current: Vec<Rgb> = Vec::new();
            let mut fading: Option<(Fade, Instant)> = None;
            let mut last_write: Option<Instant> = None;
            loop {
                let target = {
                    let mut guard = slot.lock().expect("slot");
                    loop {
                        if guard.stop {
                            return;
                        }
                        let now = Instant::now();
                        let next = last_write.map_or(now, |t| t + interval);
                        if guard.target.is_some() && now >= next {
                            break guard.target.take();
                        }
                        if fading.is_some() || guard.target.is_some() {
                            if next <= now {
                                break None;
                            }
                            guard = wake.wait_timeout(guard, next - now).expect("slot").0;
                        } else {
                            guard = wake.wait(guard).expect("slot");
                        }
                    }
                };
                if let Some(target) = target {
                    fading = Some((Fade::new(&current, target, fade), Instant::now()));
                }
                let (frame, settled) = match &fading {
                    Some((f, started)) => (f.at(started.elapsed()), f.done(started.elapsed())),
                    None => (current.clone(), true),
                };
                if settled {
                    fading = None;
                }
                if frame != current {
                    manager.show(&frame, false);
                    last_write = Some(Instant::now());
                    current = frame;
                }
            }
        });
        SpinningWriter {
            shared,
            thread: Some(thread),
        }
    }

    pub fn set_target(&self, leds: Vec<Rgb>) {
        let (slot, wake) = &*self.shared;
        slot.lock().expect("slot").target = Some(leds);
        wake.notify_one();
    }
}

impl Drop for SpinningWriter {
    fn drop(&mut self) {
        let (slot, wake) = &*self.shared;
        slot.lock().expect("slot").stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
