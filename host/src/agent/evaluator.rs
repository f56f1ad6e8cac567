//! The evaluation loop: evaluates the policy on every snapshot change, on a policy or
//! settings swap, and when the policy's "again in N ms" hint expires — at most once
//! per frame tick — and hands each frame to the writer. A failed evaluation is
//! logged and counted; the LEDs keep the last good frame.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::AgentState;
use crate::device::FrameWriter;
use crate::policy::PolicyInstance;
use crate::state::{Snapshot, wall_clock_ms};

/// One frame tick: the writer's 50 fps.
pub const FRAME_TICK: Duration = Duration::from_millis(20);

/// Changes the reload watcher sends.
pub enum PolicyCommand {
    /// A new policy, already compiled and trial-evaluated.
    Swap(PolicyInstance),
    /// New settings for the running policy.
    Settings(Option<String>),
}

pub async fn run(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut commands: mpsc::Receiver<PolicyCommand>,
    instance: PolicyInstance,
    writer: Arc<FrameWriter>,
    state: Arc<AgentState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut instance = instance;
    let mut last_eval: Option<Instant> = None;
    // Without a policy directory to watch nobody sends commands; keep evaluating.
    let mut commands_open = true;
    // Evaluate at start, then after anything that may change the frame.
    loop {
        if let Some(last) = last_eval {
            tokio::time::sleep_until(last + FRAME_TICK).await;
        }
        last_eval = Some(Instant::now());
        let snapshot = snapshots.borrow_and_update().clone();
        let leds = led_count(&state);
        let Some((evaluated, again_at)) =
            evaluate_once(instance, snapshot, leds, &writer, &state).await
        else {
            return;
        };
        instance = evaluated;
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                state.changed();
            }
            command = commands.recv(), if commands_open => match command {
                Some(PolicyCommand::Swap(new)) => instance = new,
                Some(PolicyCommand::Settings(settings)) => match instance.configure(settings) {
                    Ok(Some(problem)) => tracing::warn!(%problem, "the policy did not accept its settings"),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "applying new settings failed"),
                },
                None => commands_open = false,
            },
            () = sleep_until_opt(again_at) => {}
            () = led_count_changes(&state, leds) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One evaluation, off the async workers; the frame goes to the writer and the
/// state. Returns the instance and when the policy asked to be evaluated again; none
/// if the evaluation thread panicked.
async fn evaluate_once(
    instance: PolicyInstance,
    snapshot: Arc<Snapshot>,
    leds: u32,
    writer: &FrameWriter,
    state: &AgentState,
) -> Option<(PolicyInstance, Option<Instant>)> {
    let started = std::time::Instant::now();
    let joined = tokio::task::spawn_blocking(move || {
        let mut instance = instance;
        let result = instance.evaluate_at(&snapshot, leds, wall_clock_ms());
        (instance, result)
    })
    .await;
    let Ok((instance, result)) = joined else {
        tracing::error!("the policy evaluation thread panicked; stopping evaluation");
        return None;
    };
    let seconds = started.elapsed().as_secs_f64();
    let again_at = match result {
        Ok(frame) => {
            state.record_evaluation(seconds, true);
            let again_at = frame
                .again_after_ms
                .map(|ms| Instant::now() + Duration::from_millis(u64::from(ms)));
            writer.set_target(frame.leds.clone());
            state.set_frame(frame);
            again_at
        }
        Err(error) => {
            state.record_evaluation(seconds, false);
            tracing::warn!(%error, "policy evaluation failed; keeping the last frame");
            None
        }
    };
    Some((instance, again_at))
}

/// LEDs to evaluate for: what the sticks have (or are expected to have).
fn led_count(state: &AgentState) -> u32 {
    u32::try_from(state.device.led_count.load(Ordering::Relaxed).max(1)).unwrap_or(u32::MAX)
}

/// Resolves when the LED count differs from `evaluated` — a stick arrived, left or was
/// swapped for another model — so the frame is computed again for the new size.
/// Sleeps until the device layer says the count changed: no polling.
async fn led_count_changes(state: &AgentState, evaluated: u32) {
    loop {
        // Registered before the check, so a change between the two is not missed.
        let changed = state.device.led_count_changed.notified();
        if led_count(state) != evaluated {
            return;
        }
        changed.await;
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
