//! A running sandbox ([`PolicyInstance`]): evaluates snapshots into frames.

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::{current, v0_2, v0_3};
use super::component::{CallPhase, Policy};
use super::sandbox::{PluginState, SnapshotView};
use super::untrusted::{MAX_PLUGIN_TEXT, sanitize};
use super::{MAX_FRAME_LEDS, PolicyError};
use crate::frame::{Frame, LedReason, Rgb};
use crate::state::Snapshot;

/// A running sandbox. Reused across evaluations while they succeed (instantiation
/// costs more than an evaluation); after any failure the next call starts a fresh one.
pub struct PolicyInstance {
    policy: Arc<Policy>,
    settings: Option<String>,
    live: Option<(Store<PluginState>, LivePolicy)>,
}

impl PolicyInstance {
    /// A sandbox already started with `settings`.
    pub(super) fn started(
        policy: Arc<Policy>,
        settings: Option<String>,
        store: Store<PluginState>,
        bindings: LivePolicy,
    ) -> PolicyInstance {
        PolicyInstance {
            policy,
            settings,
            live: Some((store, bindings)),
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Applies new settings without recompiling; returns the policy's complaint about
    /// them, if it had one (it then runs on its documented defaults).
    pub fn configure(&mut self, settings: Option<String>) -> Result<Option<String>, PolicyError> {
        self.settings = settings;
        let (store, bindings, problem) = self.policy.start(self.settings.as_deref())?;
        self.live = Some((store, bindings));
        Ok(problem)
    }

    /// Evaluates one snapshot for a device of `led_count` LEDs at the snapshot's own
    /// time (a replay: the same snapshot always gives the same frame). The frame is
    /// padded with off LEDs or truncated to exactly `led_count`.
    pub fn evaluate(
        &mut self,
        snapshot: &Arc<Snapshot>,
        led_count: u32,
    ) -> Result<Frame, PolicyError> {
        self.evaluate_at(snapshot, led_count, snapshot.now_ms)
    }

    /// Evaluates one snapshot with `now-ms` at `now_ms`: a live agent passes the wall
    /// clock, so a policy animating on `again-after-ms` sees time move although the
    /// node's state (and so the snapshot) stays the same.
    pub fn evaluate_at(
        &mut self,
        snapshot: &Arc<Snapshot>,
        led_count: u32,
        now_ms: u64,
    ) -> Result<Frame, PolicyError> {
        let (mut store, bindings) = match self.live.take() {
            Some(live) => live,
            None => {
                let (store, bindings, _) = self.policy.start(self.settings.as_deref())?;
                (store, bindings)
            }
        };
        let view = SnapshotView {
            snapshot: Arc::clone(snapshot),
            led_count,
            now_ms,
        };
        let result = evaluate_in(&self.policy, &mut store, &bindings, view);
        if result.is_ok() {
            self.live = Some((store, bindings));
        }
        result
    }
}

fn evaluate_in(
    policy: &Policy,
    store: &mut Store<PluginState>,
    bindings: &LivePolicy,
    view: SnapshotView,
) -> Result<Frame, PolicyError> {
    let led_count = view.led_count;
    let snapshot = Arc::clone(&view.snapshot);
    store.data_mut().current = view;
    let ticking = policy.ticker.running();
    store.set_epoch_deadline(policy.deadline_ticks);
    let outcome = bindings.evaluate(&mut *store);
    drop(ticking);
    store.data_mut().current = SnapshotView::empty();
    let frame = outcome
        .map_err(|e| policy.call_error(e, CallPhase::Evaluate))?
        .map_err(|message| PolicyError::Reported {
            name: policy.info.name.clone(),
            message: sanitize(&message, MAX_PLUGIN_TEXT),
        })?;
    let counts = Counted {
        pods: snapshot.pods.len(),
        nodes: snapshot.node_summaries().len(),
        alerts: snapshot.alerts.len(),
    };
    fit_frame(&policy.info.name, frame, led_count, &counts)
}

/// How many of each thing a reason may point at.
pub(crate) struct Counted {
    pub(crate) pods: usize,
    pub(crate) nodes: usize,
    pub(crate) alerts: usize,
}

/// Most reasons a frame keeps, and most pods, nodes or alerts one reason names.
const MAX_REASONS: usize = MAX_FRAME_LEDS;
const MAX_NAMED: usize = 64;
/// Longest rule text kept, in characters.
pub const MAX_RULE_TEXT: usize = 200;

/// Applies the contract's frame rule: over [`MAX_FRAME_LEDS`] is invalid; otherwise
/// pad with off or truncate to the device. Reasons are kept only where they point at
/// something that exists, bounded, their text sanitised.
pub(crate) fn fit_frame(
    name: &str,
    frame: Frame,
    led_count: u32,
    counted: &Counted,
) -> Result<Frame, PolicyError> {
    if frame.leds.len() > MAX_FRAME_LEDS {
        return Err(PolicyError::InvalidFrame {
            name: name.to_string(),
            reason: format!(
                "{} LEDs, more than the {MAX_FRAME_LEDS} any device can have",
                frame.leds.len()
            ),
        });
    }
    let mut leds = frame.leds;
    leds.resize(led_count as usize, Rgb::OFF);
    let within = |indices: Vec<u32>, count: usize, max: usize| -> Vec<u32> {
        let mut kept: Vec<u32> = indices
            .into_iter()
            .filter(|&i| (i as usize) < count)
            .take(max)
            .collect();
        kept.dedup();
        kept
    };
    let reasons = frame
        .reasons
        .into_iter()
        .take(MAX_REASONS)
        .map(|r| LedReason {
            leds: within(r.leds, led_count as usize, MAX_FRAME_LEDS),
            rule: sanitize(&r.rule, MAX_RULE_TEXT),
            pods: within(r.pods, counted.pods, MAX_NAMED),
            nodes: within(r.nodes, counted.nodes, MAX_NAMED),
            alerts: within(r.alerts, counted.alerts, MAX_NAMED),
            layer: String::new(),
        })
        .filter(|r| !r.leds.is_empty())
        .collect();
    Ok(Frame {
        leds,
        again_after_ms: frame.again_after_ms,
        reasons,
        see_through: within(frame.see_through, led_count as usize, MAX_FRAME_LEDS),
    })
}

/// An instance of any contract version; all export the same two functions.
pub(super) enum LivePolicy {
    Current(current::Policy),
    V0_3(v0_3::Policy),
    V0_2(v0_2::Policy),
}

impl LivePolicy {
    pub(super) fn configure(
        &self,
        store: &mut Store<PluginState>,
        settings: Option<&str>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            LivePolicy::Current(p) => p
                .podlight_policy_evaluator()
                .call_configure(store, settings),
            LivePolicy::V0_3(p) => p
                .podlight_policy_evaluator()
                .call_configure(store, settings),
            LivePolicy::V0_2(p) => p
                .podlight_policy_evaluator()
                .call_configure(store, settings),
        }
    }

    fn evaluate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Result<Frame, String>> {
        let rgb = |r, g, b| Rgb::new(r, g, b);
        Ok(match self {
            LivePolicy::Current(p) => {
                p.podlight_policy_evaluator()
                    .call_evaluate(store)?
                    .map(|f| Frame {
                        leds: f.leds.iter().map(|c| rgb(c.r, c.g, c.b)).collect(),
                        again_after_ms: f.again_after_ms,
                        reasons: f
                            .reasons
                            .into_iter()
                            .map(|r| LedReason {
                                leds: r.leds,
                                rule: r.rule,
                                pods: r.pods,
                                nodes: r.nodes,
                                alerts: r.alerts,
                                layer: String::new(),
                            })
                            .collect(),
                        see_through: f.see_through,
                    })
            }
            LivePolicy::V0_3(p) => p
                .podlight_policy_evaluator()
                .call_evaluate(store)?
                .map(|f| {
                    Frame::of(
                        f.leds.iter().map(|c| rgb(c.r, c.g, c.b)).collect(),
                        f.again_after_ms,
                    )
                }),
            LivePolicy::V0_2(p) => p
                .podlight_policy_evaluator()
                .call_evaluate(store)?
                .map(|f| {
                    Frame::of(
                        f.leds.iter().map(|c| rgb(c.r, c.g, c.b)).collect(),
                        f.again_after_ms,
                    )
                }),
        })
    }
}
