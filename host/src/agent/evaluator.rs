//! The evaluation loop: evaluates the policy — or each policy of a stack of layers,
//! bottom up, and composes their frames ([`crate::layers`]) — on every snapshot
//! change, on a policy or settings swap, and when a policy's "again in N ms" hint
//! expires — at most once per frame tick — and hands each frame to the writer. A
//! failed evaluation is logged and counted; the layer keeps its last good frame, and
//! its failures in a row space its next tries out ([`retry_pause`]) without holding
//! back the other layers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{AgentStatus, PolicyRole};
use crate::device::FrameWriter;
use crate::frame::Frame;
use crate::layers::{LayerFrame, compose};
use crate::policy::PolicyInstance;
use crate::quiet::QuietHours;
use crate::state::{Snapshot, wall_clock_ms};
use crate::timing::sleep_until_opt;

/// One frame tick: the writer's 50 fps.
pub(crate) const FRAME_TICK: Duration = Duration::from_millis(20);

/// The pause after `failures` evaluations in a row failed: a frame tick at first, then
/// doubling from a quarter second to at most [`MAX_RETRY_PAUSE`]. A plugin that
/// busy-waits to its deadline on every call would otherwise take most of a core
/// whenever the node changes often; this way it costs one deadline per pause.
pub(crate) fn retry_pause(failures: u32) -> Duration {
    match failures {
        0 => FRAME_TICK,
        n => crate::timing::doubling(Duration::from_millis(250), MAX_RETRY_PAUSE, n),
    }
}

pub(crate) const MAX_RETRY_PAUSE: Duration = Duration::from_secs(8);

/// A policy's evaluations take at most a quarter of a core: the next one starts no
/// sooner than this many times the last one's cost after it started. A plugin that
/// takes 40 ms and asks to run again at once is evaluated every 160 ms, not 25 times a
/// second; the agent says so (status page, `podlight_evaluations_throttled_total`).
/// With layers the cost is the whole stack's.
pub(crate) const EVALUATION_SPACING: u32 = 4;

/// How long after an evaluation that began at `started` and cost `cost` the next may
/// begin; and whether the cost stretched that beyond a frame tick.
pub(crate) fn next_evaluation(started: Instant, cost: Duration) -> (Instant, bool) {
    let budget = cost.saturating_mul(EVALUATION_SPACING);
    (started + FRAME_TICK.max(budget), budget > FRAME_TICK)
}

/// What the shadow policy is evaluated on: exactly what the active policy last was,
/// and the frame it gave.
#[derive(Clone)]
pub(crate) struct ShadowInput {
    snapshot: Arc<Snapshot>,
    leds: u32,
    now_ms: u64,
    active: Frame,
}

/// Changes the reload watcher sends.
pub(crate) enum PolicyCommand {
    /// A new policy, already compiled and trial-evaluated.
    Swap(PolicyInstance),
    /// New settings for the running policy.
    Settings(Option<String>),
}

/// A command for the layer at this position in the stack (0: the base).
pub(crate) type LayerCommand = (usize, PolicyCommand);

/// Where the evaluation loop's frames go: the sticks (through quiet hours), the
/// status, and the shadow policy's input.
pub(crate) struct Outputs {
    pub writer: Arc<FrameWriter>,
    pub status: Arc<AgentStatus>,
    pub shadow: Option<watch::Sender<Option<ShadowInput>>>,
    pub quiet: Option<Arc<QuietHours>>,
}

/// One layer of the stack: its policy, its last good frame and how its evaluations
/// have been going.
pub(crate) struct Layer {
    pub name: String,
    instance: PolicyInstance,
    last_good: Option<Frame>,
    /// Why its last evaluation failed; none once one succeeds.
    failure: Option<String>,
    failures: u32,
    /// While failing: not evaluated again before this.
    retry_at: Option<Instant>,
}

impl Layer {
    pub fn new(name: String, instance: PolicyInstance) -> Layer {
        Layer {
            name,
            instance,
            last_good: None,
            failure: None,
            failures: 0,
            retry_at: None,
        }
    }

    fn role(position: usize) -> PolicyRole {
        match position {
            0 => PolicyRole::Active,
            n => PolicyRole::Layer(n),
        }
    }

    /// Applies a command from its reload watcher: whatever failed before was another
    /// policy's, or the same one's with other settings.
    fn apply(&mut self, command: PolicyCommand) {
        match command {
            PolicyCommand::Swap(new) => self.instance = new,
            PolicyCommand::Settings(settings) => configure(&mut self.instance, settings),
        }
        self.failures = 0;
        self.retry_at = None;
    }
}

fn configure(instance: &mut PolicyInstance, settings: Option<String>) {
    match instance.configure(settings) {
        Ok(Some(problem)) => {
            tracing::warn!(%problem, "the policy did not accept its settings");
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "applying new settings failed"),
    }
}

pub(crate) async fn run(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut commands: mpsc::Receiver<LayerCommand>,
    layers: Vec<Layer>,
    outputs: Outputs,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut layers = layers;
    let mut last_eval: Option<Instant> = None;
    let mut last_cost = Duration::ZERO;
    let mut throttled = false;
    // Without a policy directory to watch nobody sends commands; keep evaluating.
    let mut commands_open = true;
    // Evaluate at start, then after anything that may change the frame.
    loop {
        if let Some(last) = last_eval {
            let (earliest, by_cost) = next_evaluation(last, last_cost);
            let delayed = by_cost && Instant::now() < earliest;
            if delayed {
                outputs.status.metrics.evaluation_throttled();
            }
            if delayed != throttled {
                throttled = delayed;
                let spacing = throttled.then(|| earliest.duration_since(last));
                if let Some(spacing) = spacing {
                    tracing::warn!(
                        cost_ms = last_cost.as_millis() as u64,
                        spacing_ms = spacing.as_millis() as u64,
                        "the policy asks to be evaluated more often than a quarter of a core allows; spacing its evaluations"
                    );
                }
                outputs.status.update_policy_of(PolicyRole::Active, |p| {
                    p.throttled_spacing_ms = spacing.map(|s| s.as_millis() as u64);
                });
            }
            // A new policy or settings end a pause after failures at once.
            tokio::select! {
                () = tokio::time::sleep_until(earliest) => {}
                command = commands.recv(), if commands_open => {
                    commands_open = apply(command, &mut layers);
                }
                _ = shutdown.changed() => return,
            }
        }
        last_eval = Some(Instant::now());
        let snapshot = snapshots.borrow_and_update().clone();
        let leds = led_count(&outputs.status);
        let Some((evaluated, again_at, cost)) =
            evaluate_once(layers, snapshot, leds, &outputs).await
        else {
            return;
        };
        layers = evaluated;
        last_cost = cost;
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                outputs.status.changed();
            }
            command = commands.recv(), if commands_open => {
                commands_open = apply(command, &mut layers);
            }
            () = sleep_until_opt(again_at) => {}
            () = led_count_changes(&outputs.status, leds) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Applies a command from a layer's reload watcher; false once the watchers are gone.
fn apply(command: Option<LayerCommand>, layers: &mut [Layer]) -> bool {
    match command {
        Some((position, command)) => {
            if let Some(layer) = layers.get_mut(position) {
                layer.apply(command);
            }
            true
        }
        None => false,
    }
}

/// One evaluation of every layer that is due, off the async workers, composed; the
/// frame goes to the writer and the status. Returns the layers, when to evaluate again
/// (a policy's hint, a failing layer's retry, a quiet-hours boundary) and what the
/// evaluation cost; none if the evaluation thread panicked.
async fn evaluate_once(
    layers: Vec<Layer>,
    snapshot: Arc<Snapshot>,
    leds: u32,
    outputs: &Outputs,
) -> Option<(Vec<Layer>, Option<Instant>, Duration)> {
    let status = &outputs.status;
    let started = std::time::Instant::now();
    let now_ms = wall_clock_ms();
    let now = Instant::now();
    let evaluated = Arc::clone(&snapshot);
    let joined = tokio::task::spawn_blocking(move || {
        let mut layers = layers;
        let mut results = Vec::with_capacity(layers.len());
        for layer in &mut layers {
            let due = layer.retry_at.is_none_or(|at| at <= now);
            results.push(due.then(|| {
                let begun = std::time::Instant::now();
                let frame = layer.instance.evaluate_at(&evaluated, leds, now_ms);
                (frame, begun.elapsed())
            }));
        }
        (layers, results)
    })
    .await;
    let Ok((mut layers, results)) = joined else {
        tracing::error!("the policy evaluation thread panicked; stopping evaluation");
        return None;
    };
    let cost = started.elapsed();
    let mut fresh = vec![false; layers.len()];
    for (position, (layer, result)) in layers.iter_mut().zip(results).enumerate() {
        let Some((result, took)) = result else {
            continue;
        };
        match result {
            Ok(frame) => {
                status.record_evaluation(took.as_secs_f64(), true);
                layer.last_good = Some(frame);
                layer.failure = None;
                layer.failures = 0;
                layer.retry_at = None;
                fresh[position] = true;
            }
            Err(error) => {
                status.record_evaluation(took.as_secs_f64(), false);
                layer.failures = layer.failures.saturating_add(1);
                let pause = retry_pause(layer.failures);
                tracing::warn!(%error, layer = %layer.name, failures = layer.failures, retry_in_ms = pause.as_millis() as u64, "policy evaluation failed; keeping the layer's last good frame");
                layer.failure = Some(error.to_string());
                layer.retry_at = Some(Instant::now() + pause);
            }
        }
        status.record_layer(Layer::role(position), layer.failure.clone());
    }
    let retry_at = layers.iter().filter_map(|l| l.retry_at).min();
    if !fresh.iter().any(|f| *f) {
        // Nothing new to show: the sticks keep what they have.
        return Some((layers, retry_at, cost));
    }
    let frames: Vec<LayerFrame<'_>> = layers
        .iter()
        .zip(&fresh)
        .map(|(layer, &fresh)| LayerFrame {
            name: &layer.name,
            frame: layer.last_good.as_ref(),
            stale: (!fresh).then(|| layer.failure.as_deref().unwrap_or("not evaluated yet")),
        })
        .collect();
    let frame = compose(&frames, leds as usize);
    let (shown, quiet_change_ms) = match outputs.quiet.as_deref() {
        Some(quiet) => quiet.apply(&frame, &snapshot, now_ms),
        None => (frame.leds.clone(), None),
    };
    // Quiet hours begin and end by the clock: evaluate again then.
    let until_quiet_change =
        quiet_change_ms.map(|at| crate::timing::until_wall_clock(at, wall_clock_ms()));
    let again_at = frame
        .again_after_ms
        .map(|ms| Duration::from_millis(u64::from(ms)))
        .into_iter()
        .chain(until_quiet_change)
        .map(|wait| Instant::now() + wait)
        .chain(retry_at)
        .min();
    outputs.writer.set_target(shown.clone());
    if let Some(shadow) = &outputs.shadow {
        // The sticks have their frame; the shadow gets the same inputs.
        shadow.send_replace(Some(ShadowInput {
            snapshot: Arc::clone(&snapshot),
            leds,
            now_ms,
            active: frame.clone(),
        }));
    }
    status.set_frame(frame, Arc::clone(&snapshot), shown);
    Some((layers, again_at, cost))
}

/// The shadow policy's loop: evaluates the candidate on each input the active loop
/// publishes (the latest only, when it falls behind), compares the frames and records
/// both; takes swaps and settings from its own reload watcher. Nothing here reaches
/// the writer. Failures in a row pause it like the active policy.
pub async fn run_shadow(
    mut inputs: watch::Receiver<Option<ShadowInput>>,
    mut commands: mpsc::Receiver<LayerCommand>,
    instance: PolicyInstance,
    status: Arc<AgentStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut instance = instance;
    let mut failures: u32 = 0;
    let mut commands_open = true;
    loop {
        tokio::select! {
            changed = inputs.changed() => if changed.is_err() { return },
            command = commands.recv(), if commands_open => {
                match command {
                    Some((_, PolicyCommand::Swap(new))) => instance = new,
                    Some((_, PolicyCommand::Settings(settings))) => configure(&mut instance, settings),
                    None => commands_open = false,
                }
                // Compare the new candidate on the last input at once.
                failures = 0;
            }
            _ = shutdown.changed() => return,
        }
        let Some(input) = inputs.borrow_and_update().clone() else {
            continue;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut instance = instance;
            let result = instance.evaluate_at(&input.snapshot, input.leds, input.now_ms);
            (instance, result, input.active)
        })
        .await;
        let Ok((evaluated, result, active)) = joined else {
            tracing::error!("the shadow evaluation thread panicked; stopping the shadow");
            return;
        };
        instance = evaluated;
        match result {
            Ok(frame) => {
                failures = 0;
                let differs = frame.leds != active.leds;
                status.record_shadow(Ok((frame, differs)));
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                status.record_shadow(Err(error.to_string()));
                tracing::warn!(%error, failures, "shadow policy evaluation failed");
                tokio::select! {
                    () = tokio::time::sleep(retry_pause(failures)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// LEDs to evaluate for: what the sticks have (or are expected to have).
fn led_count(status: &AgentStatus) -> u32 {
    status.device.leds_to_evaluate()
}

/// Resolves when the LED count differs from `evaluated` — a stick arrived, left or was
/// swapped for another model — so the frame is computed again for the new size.
/// Sleeps until the device layer says the count changed: no polling.
async fn led_count_changes(status: &AgentStatus, evaluated: u32) {
    loop {
        // Registered before the check, so a change between the two is not missed.
        let changed = status.device.led_count_changed.notified();
        if led_count(status) != evaluated {
            return;
        }
        changed.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_are_spaced_by_their_cost_to_a_quarter_of_a_core() {
        let started = Instant::now();
        let ms = Duration::from_millis;
        // Cheap: one frame tick, not throttled.
        assert_eq!(
            next_evaluation(started, ms(1)),
            (started + FRAME_TICK, false)
        );
        // 40 ms each: every 160 ms, throttled.
        assert_eq!(next_evaluation(started, ms(40)), (started + ms(160), true));
    }

    #[test]
    fn failures_in_a_row_slow_evaluation_down_to_a_bound() {
        let pauses: Vec<u64> = (0..8).map(|n| retry_pause(n).as_millis() as u64).collect();
        assert_eq!(pauses, [20, 250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(retry_pause(u32::MAX), MAX_RETRY_PAUSE);
    }
}
