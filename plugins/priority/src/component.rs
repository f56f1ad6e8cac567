//! The Wasm component glue: bindings generated from `wit/`, mapping the contract's
//! types onto the rule. With the `contract-0-2` or `contract-0-3` feature the same
//! rule is built against that frozen contract (0.2: no cluster scope; neither has
//! reasons or silences): the plugins the test suite uses to show that plugins built
//! for earlier contracts keep loading unchanged.

use std::cell::RefCell;

use crate::{AlertsJudged, Counts, Judged, Settings, decide, parse_settings};
use exports::podlight::policy::evaluator::{Frame, Guest};
use podlight::policy::snapshot;
use podlight::policy::types::{Rgb, StateCounts};

#[cfg(not(any(feature = "contract-0-2", feature = "contract-0-3")))]
wit_bindgen::generate!({
    world: "policy",
    path: "../../wit",
});

#[cfg(feature = "contract-0-3")]
wit_bindgen::generate!({
    world: "policy",
    path: "../../host/compat/wit-0.3",
});

#[cfg(feature = "contract-0-2")]
wit_bindgen::generate!({
    world: "policy",
    path: "../../host/compat/wit-0.2",
});

thread_local! {
    static SETTINGS: RefCell<Settings> = RefCell::new(Settings::default());
}

struct Priority;

impl Guest for Priority {
    fn configure(settings: Option<String>) -> Result<(), String> {
        let (parsed, problem) = parse_settings(settings.as_deref());
        SETTINGS.with(|s| *s.borrow_mut() = parsed);
        problem.map_or(Ok(()), Err)
    }

    fn evaluate() -> Result<Frame, String> {
        #[cfg(not(feature = "contract-0-2"))]
        if matches!(
            snapshot::scope(),
            podlight::policy::types::ScopeKind::Cluster
        ) {
            return Ok(cluster_frame());
        }
        let leds = snapshot::led_count();
        SETTINGS.with(|s| {
            let settings = &s.borrow();
            let judged = judged(settings);
            let decision = decide(&judged, settings);
            let (colour, again_after_ms) = decision.blinking(settings, snapshot::now_ms());
            let lit = vec![rgb(colour); leds as usize];
            Ok(with_reasons::node_frame(
                lit,
                again_after_ms,
                &decision,
                settings,
            ))
        })
    }
}

/// What the node rule reads from the snapshot.
fn judged(settings: &Settings) -> Judged {
    Judged {
        counts: counts_from(snapshot::counts()),
        silenced: with_reasons::silenced_counts(),
        node_silenced: with_reasons::node_silenced(),
        alerts: with_reasons::alerts_judged(None, settings),
    }
}

#[cfg(not(feature = "contract-0-2"))]
fn cluster_frame() -> Frame {
    SETTINGS.with(|s| {
        let settings = &s.borrow();
        // Read once: the host copies every node into the guest on each call.
        let summaries = snapshot::nodes();
        let nodes: Vec<crate::cluster::NodeView> = summaries
            .iter()
            .map(|n| crate::cluster::NodeView {
                ready: n.node.ready,
                pressure: n.node.memory_pressure || n.node.disk_pressure || n.node.pid_pressure,
                cordoned: n.node.unschedulable,
                counts: counts_from(n.counts),
                silenced: with_reasons::summary_silenced(n),
                node_silenced: with_reasons::summary_node_silenced(n),
                alerts: with_reasons::alerts_judged(Some(&n.node.name), settings),
            })
            .collect();
        let frame = crate::cluster::explained_frame(
            &nodes,
            settings,
            snapshot::led_count(),
            snapshot::now_ms(),
        );
        let names: Vec<String> = summaries.into_iter().map(|n| n.node.name).collect();
        with_reasons::cluster_frame(frame, &names, settings)
    })
}

/// Contract 0.4: frames say why; snapshots carry silences.
#[cfg(not(any(feature = "contract-0-2", feature = "contract-0-3")))]
mod with_reasons {
    use super::*;
    use crate::{AlertView, Decision, State};
    use exports::podlight::policy::evaluator::LedReason;
    use podlight::policy::types::{Alert, AlertState, NodeSummary, PodState};

    fn view(alert: &Alert) -> AlertView<'_> {
        AlertView {
            severity: &alert.severity,
            muted: !matches!(alert.state, AlertState::Firing),
        }
    }

    /// Which alert rules the alerts about `node` (in node scope: every alert) match.
    pub(super) fn alerts_judged(node: Option<&str>, settings: &Settings) -> AlertsJudged {
        if settings.alert_rules.is_empty() {
            return AlertsJudged::default();
        }
        let alerts = snapshot::alerts();
        AlertsJudged::of(
            alerts
                .iter()
                .filter(|a| node.is_none_or(|n| a.node == n))
                .map(view),
            settings,
        )
    }

    /// Indices of the alerts about `node` (any, in node scope) behind `decision`.
    fn alerts_behind(
        alerts: &[Alert],
        node: Option<&str>,
        names: impl Fn(AlertView<'_>) -> bool,
    ) -> Vec<u32> {
        alerts
            .iter()
            .enumerate()
            .filter(|(_, a)| node.is_none_or(|n| a.node == n) && names(view(a)))
            .map(|(i, _)| i as u32)
            .take(64)
            .collect()
    }

    pub(super) fn silenced_counts() -> Counts {
        counts_from(snapshot::silenced_counts())
    }

    pub(super) fn node_silenced() -> bool {
        snapshot::node().silence.is_some()
    }

    pub(super) fn summary_silenced(n: &NodeSummary) -> Counts {
        counts_from(n.silenced)
    }

    pub(super) fn summary_node_silenced(n: &NodeSummary) -> bool {
        n.node.silence.is_some()
    }

    fn pod_state(state: State) -> PodState {
        match state {
            State::Deleting => PodState::Deleting,
            State::Failed => PodState::Failed,
            State::Succeeded => PodState::Succeeded,
            State::Pending => PodState::Pending,
            State::Unready => PodState::Unready,
            State::Running => PodState::Running,
            State::Unknown => PodState::Unknown,
        }
    }

    pub(super) fn node_frame(
        leds: Vec<Rgb>,
        again_after_ms: Option<u32>,
        decision: &Decision,
        settings: &Settings,
    ) -> Frame {
        let (states, silenced) = decision.behind(settings);
        let mut pods: Vec<u32> = states
            .into_iter()
            .flat_map(|state| snapshot::pods_in(pod_state(state), silenced))
            .collect();
        pods.sort_unstable();
        let alerts = if decision.alert_rule().is_some() {
            alerts_behind(&snapshot::alerts(), None, |a| {
                decision.names_alert(settings, a)
            })
        } else {
            Vec::new()
        };
        let all: Vec<u32> = (0..leds.len() as u32).collect();
        let see_through = if decision.see_through(settings) {
            all.clone()
        } else {
            Vec::new()
        };
        let reason = LedReason {
            leds: all,
            rule: decision.rule_text(settings),
            pods,
            nodes: Vec::new(),
            alerts,
        };
        Frame {
            leds,
            again_after_ms,
            reasons: vec![reason],
            see_through,
        }
    }

    pub(super) fn cluster_frame(
        frame: crate::cluster::ClusterFrame,
        names: &[String],
        settings: &Settings,
    ) -> Frame {
        let all_alerts = if settings.alert_rules.is_empty() {
            Vec::new()
        } else {
            snapshot::alerts()
        };
        Frame {
            leds: frame.leds.into_iter().map(rgb).collect(),
            again_after_ms: frame.again_after_ms,
            reasons: frame
                .reasons
                .into_iter()
                .map(|r| {
                    let alerts = match r.alert_rule {
                        Some((rule, muted)) => r
                            .nodes
                            .iter()
                            .filter_map(|&n| names.get(n as usize))
                            .flat_map(|node| {
                                alerts_behind(&all_alerts, Some(node), |a| {
                                    settings.alert_behind((rule, muted), a)
                                })
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    LedReason {
                        leds: vec![r.led],
                        rule: r.rule,
                        pods: Vec::new(),
                        nodes: r.nodes,
                        alerts,
                    }
                })
                .collect(),
            see_through: frame.see_through,
        }
    }
}

/// Contracts 0.2 and 0.3: no reasons, no silences.
#[cfg(any(feature = "contract-0-2", feature = "contract-0-3"))]
mod with_reasons {
    use super::*;

    pub(super) fn silenced_counts() -> Counts {
        Counts::default()
    }

    pub(super) fn node_silenced() -> bool {
        false
    }

    pub(super) fn alerts_judged(_: Option<&str>, _: &Settings) -> AlertsJudged {
        AlertsJudged::default()
    }

    #[cfg(feature = "contract-0-3")]
    pub(super) fn summary_silenced(_: &podlight::policy::types::NodeSummary) -> Counts {
        Counts::default()
    }

    #[cfg(feature = "contract-0-3")]
    pub(super) fn summary_node_silenced(_: &podlight::policy::types::NodeSummary) -> bool {
        false
    }

    pub(super) fn node_frame(
        leds: Vec<Rgb>,
        again_after_ms: Option<u32>,
        _: &crate::Decision,
        _: &Settings,
    ) -> Frame {
        Frame {
            leds,
            again_after_ms,
        }
    }

    #[cfg(feature = "contract-0-3")]
    pub(super) fn cluster_frame(
        frame: crate::cluster::ClusterFrame,
        _: &[String],
        _: &Settings,
    ) -> Frame {
        Frame {
            leds: frame.leds.into_iter().map(rgb).collect(),
            again_after_ms: frame.again_after_ms,
        }
    }
}

fn rgb(c: crate::Rgb) -> Rgb {
    Rgb {
        r: c.r,
        g: c.g,
        b: c.b,
    }
}

fn counts_from(c: StateCounts) -> Counts {
    Counts {
        deleting: c.deleting,
        failed: c.failed,
        succeeded: c.succeeded,
        pending: c.pending,
        unready: c.unready,
        running: c.running,
        unknown: c.unknown,
    }
}

export!(Priority);
