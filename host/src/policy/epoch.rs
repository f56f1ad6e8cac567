//! Deadlines: the thread that advances an engine's epoch while a plugin call runs,
//! and a deadline in its ticks.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use wasmtime::Engine;

use crate::lock::lock;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

pub(super) fn deadline_ticks(deadline: Duration) -> u64 {
    let ticks = deadline.as_micros().div_ceil(EPOCH_TICK.as_micros());
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// Advances the engine's epoch every tick while a plugin call is running, for as long
/// as the engine lives. Between calls it sleeps: an idle agent does not wake 200
/// times a second to count time nobody is measuring.
#[derive(Debug, Default)]
pub(super) struct EpochTicker {
    /// Plugin calls in progress.
    running: Mutex<usize>,
    wake: Condvar,
}

impl EpochTicker {
    /// Ticks while the returned guard lives. A call's deadline counts from here.
    pub(super) fn running(self: &Arc<Self>) -> TickingGuard {
        *lock(&self.running) += 1;
        self.wake.notify_one();
        TickingGuard(Arc::clone(self))
    }
}

pub(super) struct TickingGuard(Arc<EpochTicker>);

impl Drop for TickingGuard {
    fn drop(&mut self) {
        let mut running = lock(&self.0.running);
        *running = running.saturating_sub(1);
    }
}

pub(super) fn spawn_epoch_ticker(engine: &Engine) -> Arc<EpochTicker> {
    let ticker = Arc::new(EpochTicker::default());
    let weak = engine.weak();
    let shared = Arc::clone(&ticker);
    let spawned = thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                drop(engine);
                {
                    let running = lock(&shared.running);
                    if *running == 0 {
                        // Until a call starts; now and then, to notice the engine is gone.
                        let _ = shared.wake.wait_timeout(running, Duration::from_secs(10));
                        continue;
                    }
                }
                if let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                }
                thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker deadlines never fire; say so loudly rather than fail.
        tracing::error!(error = %e, "cannot start the policy deadline thread; plugin deadlines are not enforced");
    }
    ticker
}
