//! What the agent shows the world: the current snapshot, frame and policy, and the
//! counters behind readiness and metrics.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::reporter::Publishing;
use crate::alerts::AlertsStatus;
use crate::cluster::ClusterStatus;
use crate::device::DeviceStatus;
use crate::explain::{Explanation, PolicyName, explain};
use crate::frame::Frame;
use crate::lock::lock;
use crate::policy::PrecompiledUse;
use crate::report::{ActivePolicy, DeviceReport, LayerReport, NodeReport, ReloadOutcome};
use crate::state::Snapshot;

/// The active policy and how the last reload went.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    pub name: String,
    pub sha256: String,
    /// Where it came from: `builtin` or a file path.
    pub origin: String,
    pub settings: Option<String>,
    /// The last reload failure, kept until a reload succeeds.
    pub last_error: Option<String>,
    /// The plugin file's sha256 when it differs from `sha256` (a `.wasm.gz`).
    pub file_sha256: Option<String>,
    /// When this policy became active (wall-clock ms).
    pub since_ms: u64,
    /// How the last reload attempt after the start ended.
    pub last_reload: Option<ReloadOutcome>,
    /// While the policy asks for evaluations more often than its share of a core
    /// allows: the spacing they are given instead.
    pub throttled_spacing_ms: Option<u64>,
    /// What became of the precompiled artifact pulled with the plugin, if any.
    pub precompiled: Option<PrecompiledUse>,
    /// Why the policy's compiled form is not in the compile cache, if it is not.
    pub cache_problem: Option<String>,
}

/// A shadow policy (`--shadow-policy`): evaluated on the same snapshots as the active
/// one, never shown on the sticks; its frame and how often it differs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStatus {
    pub policy: PolicyStatus,
    /// Its frame for the active policy's last evaluation, as `#rrggbb`.
    pub leds: Vec<String>,
    pub again_after_ms: Option<u32>,
    /// Whether that frame differs from the active policy's for the same snapshot and
    /// time; none before the first comparison.
    pub differs: Option<bool>,
    /// Why its last evaluation failed, if it did.
    pub evaluation_error: Option<String>,
    pub compared: u64,
    pub differing: u64,
    pub failed: u64,
}

/// Which policy a reload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRole {
    /// The policy that drives the sticks (with layers: the base layer).
    Active,
    /// A layer above the base (1: the first above it), in a stack of layers.
    Layer(usize),
    /// A candidate evaluated beside it (`--shadow-policy`).
    Shadow,
}

impl PolicyRole {
    /// Its frames reach the sticks.
    pub fn drives_the_sticks(self) -> bool {
        !matches!(self, PolicyRole::Shadow)
    }
}

/// A layer above the base: its name in the stack, its policy, and why its last
/// evaluation failed if it did (its last good frame is shown meanwhile).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerStatus {
    pub layer: String,
    pub policy: PolicyStatus,
    pub evaluation_error: Option<String>,
}

/// The frame on the sticks, the snapshot it was evaluated on, and what the sticks
/// show when the host changed it afterwards (quiet hours).
#[derive(Default)]
struct Shown {
    frame: Frame,
    snapshot: Option<Arc<Snapshot>>,
    leds: Vec<crate::frame::Rgb>,
}

pub struct AgentStatus {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    frame: Mutex<Shown>,
    policy: Mutex<PolicyStatus>,
    /// The base layer's name, then the layers above it; empty without layers.
    layers: Mutex<Vec<LayerStatus>>,
    /// The base layer's name in the stack.
    base_name: Mutex<String>,
    shadow: Mutex<Option<ShadowStatus>>,
    pub device: Arc<DeviceStatus>,
    /// None when no cluster is watched (the demo): always synced.
    pub cluster: Option<Arc<ClusterStatus>>,
    /// How reading Alertmanager goes; none when no alerts are read.
    pub alerts: Option<Arc<AlertsStatus>>,
    /// Bumped whenever the frame, snapshot or policy changes: the live page follows it.
    pub changes: watch::Sender<u64>,
    pub metrics: Metrics,
    /// How publishing this node's report goes; none when it is not published.
    publishing: Mutex<Option<Publishing>>,
}

impl AgentStatus {
    pub fn new(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        device: Arc<DeviceStatus>,
        cluster: Option<Arc<ClusterStatus>>,
        alerts: Option<Arc<AlertsStatus>>,
    ) -> Arc<AgentStatus> {
        Arc::new(AgentStatus {
            snapshot,
            frame: Mutex::default(),
            policy: Mutex::default(),
            layers: Mutex::default(),
            base_name: Mutex::default(),
            shadow: Mutex::default(),
            device,
            cluster,
            alerts,
            changes: watch::channel(0).0,
            metrics: Metrics::default(),
            publishing: Mutex::default(),
        })
    }

    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn frame(&self) -> Frame {
        lock(&self.frame).frame.clone()
    }

    /// What the sticks show: the frame after quiet hours.
    pub fn shown_leds(&self) -> Vec<crate::frame::Rgb> {
        lock(&self.frame).leds.clone()
    }

    /// Records the policy's frame for `snapshot` and what the sticks show of it.
    pub(crate) fn set_frame(
        &self,
        frame: Frame,
        snapshot: Arc<Snapshot>,
        shown: Vec<crate::frame::Rgb>,
    ) {
        *lock(&self.frame) = Shown {
            frame,
            snapshot: Some(snapshot),
            leds: shown,
        };
        self.changed();
    }

    /// Why each LED has its colour: the last frame's reasons on its own snapshot.
    pub fn explanation(&self) -> Explanation {
        let policy = self.policy();
        let shown = lock(&self.frame);
        let snapshot = shown
            .snapshot
            .clone()
            .unwrap_or_else(|| self.snapshot.borrow().clone());
        explain(
            &snapshot,
            &shown.frame,
            &shown.leds,
            &PolicyName {
                name: &policy.name,
                sha256: &policy.sha256,
            },
        )
    }

    pub fn policy(&self) -> PolicyStatus {
        lock(&self.policy).clone()
    }

    /// Updates the active policy's status, a layer's or the shadow's (created on
    /// first use).
    pub(crate) fn update_policy_of(&self, role: PolicyRole, f: impl FnOnce(&mut PolicyStatus)) {
        match role {
            PolicyRole::Active => f(&mut lock(&self.policy)),
            PolicyRole::Layer(n) => {
                let mut layers = lock(&self.layers);
                if layers.len() < n {
                    layers.resize_with(n, LayerStatus::default);
                }
                f(&mut layers[n - 1].policy);
            }
            PolicyRole::Shadow => f(&mut lock(&self.shadow).get_or_insert_default().policy),
        }
        self.changed();
    }

    /// Names the layers above the base, bottom up.
    pub(crate) fn set_layers(&self, names: &[String]) {
        let mut layers = lock(&self.layers);
        layers.resize_with(names.len(), LayerStatus::default);
        for (layer, name) in layers.iter_mut().zip(names) {
            layer.layer.clone_from(name);
        }
    }

    /// The layers above the base, bottom up; empty without layers.
    pub fn layers(&self) -> Vec<LayerStatus> {
        lock(&self.layers).clone()
    }

    /// How a layer's last evaluation went (none: it succeeded). The base layer's
    /// failures are logged and counted like a lone policy's.
    pub(crate) fn record_layer(&self, role: PolicyRole, failure: Option<String>) {
        if let PolicyRole::Layer(n) = role
            && let Some(layer) = lock(&self.layers).get_mut(n.wrapping_sub(1))
        {
            layer.evaluation_error = failure;
        }
    }

    /// The shadow policy's status; none without `--shadow-policy`.
    pub fn shadow(&self) -> Option<ShadowStatus> {
        lock(&self.shadow).clone()
    }

    /// The shadow's answer for the active policy's last evaluation: its frame and
    /// whether it differs, or why it failed.
    pub(crate) fn record_shadow(&self, result: Result<(Frame, bool), String>) {
        let outcome = {
            let mut shadow = lock(&self.shadow);
            let shadow = shadow.get_or_insert_default();
            match result {
                Ok((frame, differs)) => {
                    shadow.leds = frame.leds.iter().map(ToString::to_string).collect();
                    shadow.again_after_ms = frame.again_after_ms;
                    shadow.differs = Some(differs);
                    shadow.evaluation_error = None;
                    shadow.compared += 1;
                    shadow.differing += u64::from(differs);
                    if differs { "differs" } else { "same" }
                }
                Err(error) => {
                    shadow.evaluation_error = Some(error);
                    shadow.failed += 1;
                    "failed"
                }
            }
        };
        self.metrics.shadow_frame(outcome);
        self.changed();
    }

    /// What this agent reports of itself to the cluster (and on its status page).
    pub fn report(&self, pod: Option<&str>) -> NodeReport {
        let policy = self.policy();
        let leds = crate::layers::layer_of_each_led(&lock(&self.frame).frame)
            .into_iter()
            .map(|l| l.map(str::to_string))
            .collect::<Vec<_>>();
        let owned = |name: &str| {
            leds.iter()
                .enumerate()
                .filter(|(_, l)| l.as_deref() == Some(name))
                .map(|(i, _)| i as u32)
                .collect()
        };
        let layers = self
            .layers()
            .into_iter()
            .map(|layer| LayerReport {
                leds: owned(&layer.layer),
                policy: active_policy(&layer.policy),
                last_reload: layer.policy.last_reload.clone(),
                evaluation_error: layer.evaluation_error.clone(),
                layer: layer.layer,
            })
            .collect::<Vec<_>>();
        let base_leds = if layers.is_empty() {
            Vec::new()
        } else {
            owned(&self.base_layer_name())
        };
        NodeReport {
            node: self.snapshot.borrow().node.name.clone(),
            pod: pod.map(str::to_string),
            policy: active_policy(&policy),
            last_reload: policy.last_reload,
            base_leds,
            layers,
            device: DeviceReport {
                connected: self.device.connected(),
                leds: self.device.led_count(),
                families: self
                    .device
                    .families()
                    .into_iter()
                    .map(|family| family.name().to_string())
                    .collect(),
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The base layer's name in the stack (its policy's name in the source).
    pub fn base_layer_name(&self) -> String {
        lock(&self.base_name).clone()
    }

    pub(crate) fn set_base_layer_name(&self, name: &str) {
        *lock(&self.base_name) = name.to_string();
    }

    pub fn publishing(&self) -> Option<Publishing> {
        lock(&self.publishing).clone()
    }

    /// Not a change the page or the reporter follow: the reporter sets it.
    pub(crate) fn set_publishing(&self, publishing: Publishing) {
        *lock(&self.publishing) = Some(publishing);
    }

    pub(crate) fn record_evaluation(&self, seconds: f64, ok: bool) {
        self.metrics.evaluations.inc();
        if !ok {
            self.metrics.evaluation_errors.inc();
        }
        self.metrics.evaluation_seconds.observe(seconds);
    }

    /// (watch synced, device present)
    pub(crate) fn ready_parts(&self) -> (bool, bool) {
        let synced = self.cluster.as_ref().is_none_or(|c| c.synced());
        (synced, self.device.connected() > 0)
    }

    /// A policy is active, the watch has listed once (or there is no cluster), and a
    /// device is present.
    pub fn ready(&self) -> (bool, String) {
        if lock(&self.policy).name.is_empty() {
            return (false, "the policy is still being loaded".to_string());
        }
        let (synced, device) = self.ready_parts();
        let node_missing = self
            .cluster
            .as_ref()
            .is_some_and(|c| synced && !c.node_found());
        if node_missing {
            let name = self.snapshot.borrow().node.name.clone();
            return (
                false,
                format!("node {name} does not exist (yet); check --node / NODE_NAME"),
            );
        }
        let reason = match (synced, device) {
            (true, true) => "ok".to_string(),
            (false, _) => "the cluster watch has not synced yet".to_string(),
            (true, false) => {
                "no light connected (retrying in the background; `podlight devices` says why)"
                    .to_string()
            }
        };
        (synced && device, reason)
    }
}

/// What a node report says of a policy.
fn active_policy(policy: &PolicyStatus) -> ActivePolicy {
    ActivePolicy {
        name: policy.name.clone(),
        sha256: policy.sha256.clone(),
        file_sha256: policy.file_sha256.clone(),
        origin: policy.origin.clone(),
        since_ms: policy.since_ms,
    }
}
