//! The snapshot a policy sees, and its JSON form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::silence::Silence;
use super::{PodState, classify, reclassified_at};

/// The node object's conditions and scheduling flag.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
    pub unschedulable: bool,
    /// A silence on the node (maintenance); only one in force stays in a snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// A `podlight.dev/silence` annotation that could not be read, and why.
    #[serde(skip)]
    pub silence_problem: Option<String>,
}

/// A container's current state, shaped like the Kubernetes API's
/// (`{"waiting": {"reason": "…"}}`, `{"running": {}}`, `{"terminated": {…}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    Waiting {
        #[serde(default)]
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    Running {
        /// `startedAt` in milliseconds since the Unix epoch, if the API gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_ms: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Terminated {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        exit_code: i32,
    },
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState::Waiting {
            reason: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerInfo {
    pub name: String,
    pub init: bool,
    pub ready: bool,
    pub restart_count: u32,
    pub state: ContainerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_termination_reason: Option<String>,
}

/// One pod as the policy sees it. `state` and `reason` are derived by [`classify`]
/// whenever a [`Snapshot`] is built; in JSON they are written for people and ignored
/// on reading.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: String,
    #[serde(skip_deserializing)]
    pub state: PodState,
    #[serde(skip_deserializing)]
    pub reason: String,
    pub deleting: bool,
    pub ready: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner_kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time_ms: Option<u64>,
    pub created_ms: u64,
    /// Init containers first, then the regular ones.
    pub containers: Vec<ContainerInfo>,
    /// `spec.nodeName`; in a node-scope snapshot always the node's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The pod's silence; only one in force stays in a snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
    /// A `podlight.dev/silence` annotation that could not be read, and why.
    #[serde(skip)]
    pub silence_problem: Option<String>,
}

impl PodInfo {
    /// Sum of every container's restart count.
    pub fn restarts(&self) -> u32 {
        self.containers
            .iter()
            .map(|c| c.restart_count)
            .fold(0, u32::saturating_add)
    }
}

/// Pods per state on the node. In JSON every field may be left out; `total` is
/// derived on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StateCounts {
    pub deleting: u32,
    pub failed: u32,
    pub succeeded: u32,
    pub pending: u32,
    pub unready: u32,
    pub running: u32,
    pub unknown: u32,
    pub total: u32,
}

impl StateCounts {
    pub fn add(&mut self, state: PodState) {
        let slot = self.slot(state);
        *slot = slot.saturating_add(1);
        self.total = self.total.saturating_add(1);
    }

    /// Takes back one [`StateCounts::add`] of `state` (a pod that changed or went).
    pub fn remove(&mut self, state: PodState) {
        let slot = self.slot(state);
        *slot = slot.saturating_sub(1);
        self.total = self.total.saturating_sub(1);
    }

    pub fn of(&self, state: PodState) -> u32 {
        match state {
            PodState::Deleting => self.deleting,
            PodState::Failed => self.failed,
            PodState::Succeeded => self.succeeded,
            PodState::Pending => self.pending,
            PodState::Unready => self.unready,
            PodState::Running => self.running,
            PodState::Unknown => self.unknown,
        }
    }

    /// Adds another node's counts (saturating: counts never wrap).
    pub fn add_all(&mut self, other: &StateCounts) {
        for state in PodState::ALL {
            let slot = self.slot(state);
            *slot = slot.saturating_add(other.of(state));
        }
        self.total = self.total.saturating_add(other.total);
    }

    fn slot(&mut self, state: PodState) -> &mut u32 {
        match state {
            PodState::Deleting => &mut self.deleting,
            PodState::Failed => &mut self.failed,
            PodState::Succeeded => &mut self.succeeded,
            PodState::Pending => &mut self.pending,
            PodState::Unready => &mut self.unready,
            PodState::Running => &mut self.running,
            PodState::Unknown => &mut self.unknown,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == StateCounts::default()
    }

    /// `total` as the sum of the states (what a file's counts mean).
    fn with_total(mut self) -> Self {
        self.total = PodState::ALL
            .iter()
            .map(|&state| self.of(state))
            .fold(0, u32::saturating_add);
        self
    }
}

/// What a snapshot describes: the agent's own node, or the whole cluster
/// (`podlight run --scope cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Node,
    Cluster,
}

impl Scope {
    pub fn is_node(&self) -> bool {
        *self == Scope::Node
    }
}

/// One node and the counts of the pods bound to it (cluster scope). In JSON the
/// node's fields and `counts`:
/// `{"name": "node-a", "ready": true, "counts": {"running": 110}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    #[serde(flatten)]
    pub node: NodeInfo,
    #[serde(default)]
    pub counts: StateCounts,
    /// Of `counts`, the pods with a silence in force.
    #[serde(default, skip_serializing_if = "StateCounts::is_zero")]
    pub silenced: StateCounts,
}

/// Where an alert stands in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    #[default]
    Firing,
    Silenced,
    Inhibited,
}

/// An active alert about a node, bounded and stripped by whoever read it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub severity: String,
    pub state: AlertState,
    pub starts_at_ms: u64,
    /// When Alertmanager would resolve it unless told again (0: not said); the agent
    /// keeps an alert it can no longer read until then.
    #[serde(skip_serializing_if = "is_zero")]
    pub ends_at_ms: u64,
    pub node: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The pods a cluster snapshot lists: those that explain a colour. Healthy ones are
/// only counted, so that a large cluster stays cheap to describe.
pub fn needs_attention(state: PodState) -> bool {
    !matches!(state, PodState::Running | PodState::Succeeded)
}

/// The node's state at one moment: the node, its pods (sorted by namespace and name,
/// each classified) and the counts per state.
///
/// JSON form:
/// ```json
/// {"nowMs": 1764000000000,
///  "node": {"name": "node-1", "ready": true},
///  "pods": [{"namespace": "default", "name": "web", "phase": "Running", "ready": true,
///            "containers": [{"name": "web", "ready": true, "state": {"running": {}}}]}]}
/// ```
/// Every field but a pod's `name` may be left out; `state`, `reason` and `counts` are
/// derived and ignored on reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "SnapshotFile")]
pub struct Snapshot {
    #[serde(skip_serializing_if = "Scope::is_node")]
    pub scope: Scope,
    pub now_ms: u64,
    pub node: NodeInfo,
    /// Cluster scope: every node, ordered by name. Node scope: empty (the node is
    /// `node`, its counts `counts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSummary>,
    pub pods: Vec<PodInfo>,
    pub counts: StateCounts,
    /// Of `counts`, the pods with a silence in force.
    #[serde(skip_serializing_if = "StateCounts::is_zero")]
    pub silenced: StateCounts,
    /// Active alerts about the node (cluster scope: every node), by node then name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SnapshotFile {
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    now_ms: u64,
    #[serde(default)]
    nodes: Vec<NodeSummary>,
    #[serde(default)]
    node: NodeInfo,
    #[serde(default)]
    pods: Vec<PodInfo>,
    #[serde(default)]
    alerts: Vec<Alert>,
    #[serde(default, rename = "counts")]
    _counts: serde::de::IgnoredAny,
    #[serde(default, rename = "silenced")]
    _silenced: serde::de::IgnoredAny,
}

impl From<SnapshotFile> for Snapshot {
    fn from(file: SnapshotFile) -> Self {
        let snapshot = match file.scope {
            Scope::Node => Snapshot::new(file.node, file.pods, file.now_ms),
            Scope::Cluster => {
                let nodes = file
                    .nodes
                    .into_iter()
                    .map(|n| NodeSummary {
                        counts: n.counts.with_total(),
                        ..n
                    })
                    .collect();
                Snapshot::cluster(nodes, file.pods, file.now_ms)
            }
        };
        snapshot.with_alerts(file.alerts)
    }
}

/// Classifies, orders and counts pods (all, and those with a silence in force),
/// dropping silences that have ended.
fn classify_all(pods: &mut [PodInfo], now_ms: u64) -> (StateCounts, StateCounts) {
    let mut counts = StateCounts::default();
    let mut silenced = StateCounts::default();
    for pod in pods.iter_mut() {
        let (state, reason) = classify(pod, now_ms);
        pod.state = state;
        pod.reason = reason;
        counts.add(state);
        drop_ended_silence(&mut pod.silence, now_ms);
        if pod.silence.is_some() {
            silenced.add(state);
        }
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    (counts, silenced)
}

fn drop_ended_silence(silence: &mut Option<Silence>, now_ms: u64) {
    if silence.as_ref().is_some_and(|s| !s.in_force(now_ms)) {
        *silence = None;
    }
}

/// The wall clock in milliseconds since the Unix epoch, as snapshots and policies
/// see time (0 if the clock is before the epoch).
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A snapshot file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "the snapshot is not podlight's snapshot JSON: {message}. \
         Write it like the files in examples/snapshots/, or capture one with `podlight snapshot`"
    )]
    Json { message: String },
}

impl Snapshot {
    /// Builds a snapshot: classifies every pod, sorts them and counts the states;
    /// keeps only silences in force.
    pub fn new(mut node: NodeInfo, mut pods: Vec<PodInfo>, now_ms: u64) -> Self {
        for pod in &mut pods {
            pod.node.clone_from(&node.name);
        }
        drop_ended_silence(&mut node.silence, now_ms);
        let (counts, silenced) = classify_all(&mut pods, now_ms);
        Snapshot {
            scope: Scope::Node,
            now_ms,
            node,
            nodes: Vec::new(),
            pods,
            counts,
            silenced,
            alerts: Vec::new(),
        }
    }

    /// Builds a cluster snapshot from every node (with its pods' counts, which the
    /// caller took) and the pods that need attention: orders the nodes by name,
    /// classifies and orders the pods (keeping only those that need attention), sums
    /// the counts and the nodes' conditions.
    pub fn cluster(mut nodes: Vec<NodeSummary>, mut pods: Vec<PodInfo>, now_ms: u64) -> Self {
        nodes.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        let mut counts = StateCounts::default();
        let mut silenced = StateCounts::default();
        for summary in &mut nodes {
            drop_ended_silence(&mut summary.node.silence, now_ms);
            counts.add_all(&summary.counts);
            silenced.add_all(&summary.silenced);
        }
        let node = NodeInfo {
            name: "cluster".to_string(),
            ready: nodes.iter().all(|n| n.node.ready),
            memory_pressure: nodes.iter().any(|n| n.node.memory_pressure),
            disk_pressure: nodes.iter().any(|n| n.node.disk_pressure),
            pid_pressure: nodes.iter().any(|n| n.node.pid_pressure),
            unschedulable: !nodes.is_empty() && nodes.iter().all(|n| n.node.unschedulable),
            ..NodeInfo::default()
        };
        classify_all(&mut pods, now_ms);
        pods.retain(|p| needs_attention(p.state));
        Snapshot {
            scope: Scope::Cluster,
            now_ms,
            node,
            nodes,
            pods,
            counts,
            silenced,
            alerts: Vec::new(),
        }
    }

    /// The same snapshot with these alerts, ordered by node, then name.
    pub fn with_alerts(mut self, mut alerts: Vec<Alert>) -> Self {
        alerts.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        self.alerts = alerts;
        self
    }

    /// Every node with its counts: in node scope, just this one.
    pub fn node_summaries(&self) -> std::borrow::Cow<'_, [NodeSummary]> {
        match self.scope {
            Scope::Cluster => std::borrow::Cow::Borrowed(&self.nodes),
            Scope::Node => std::borrow::Cow::Owned(vec![NodeSummary {
                node: self.node.clone(),
                counts: self.counts,
                silenced: self.silenced,
            }]),
        }
    }

    /// Shows a policy the same node(s) and pods: the time alone does not make a new
    /// snapshot.
    pub fn shows_the_same(&self, other: &Snapshot) -> bool {
        self.node == other.node
            && self.nodes == other.nodes
            && self.pods == other.pods
            && self.alerts == other.alerts
    }

    /// When the snapshot will change with time alone, if it will: a restarted
    /// container reaching its recovery time, or a silence ending. The snapshot
    /// should be built again then.
    pub fn reclassified_at_ms(&self) -> Option<u64> {
        let pods = self
            .pods
            .iter()
            .filter_map(|pod| reclassified_at(pod, self.now_ms));
        let silences = self
            .pods
            .iter()
            .filter_map(|pod| pod.silence.as_ref())
            .chain(self.node.silence.as_ref())
            .chain(self.nodes.iter().filter_map(|n| n.node.silence.as_ref()))
            .map(|silence| silence.until_ms);
        pods.chain(silences).min()
    }

    /// Indices of the pods in `state`, with a silence in force or without one.
    pub fn pods_in(&self, state: PodState, silenced: bool) -> Vec<u32> {
        self.pods
            .iter()
            .enumerate()
            .filter(|(_, pod)| pod.state == state && pod.silence.is_some() == silenced)
            .filter_map(|(index, _)| u32::try_from(index).ok())
            .collect()
    }

    pub fn from_json(text: &str) -> Result<Self, SnapshotError> {
        serde_json::from_str(text).map_err(|e| SnapshotError::Json {
            message: e.to_string(),
        })
    }

    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_classifies_sorts_and_counts() {
        let snapshot = Snapshot::from_json(
            r#"{"nowMs": 5, "node": {"name": "n1", "ready": true},
                "pods": [
                  {"namespace": "b", "name": "crash", "phase": "Running",
                   "containers": [{"name": "c", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
                  {"namespace": "a", "name": "web", "phase": "Running", "ready": true, "state": "failed"}
                ]}"#,
        )
        .expect("valid snapshot");
        assert_eq!(snapshot.pods[0].name, "web");
        assert_eq!(
            snapshot.pods[0].state,
            PodState::Running,
            "state is derived, not read"
        );
        assert_eq!(snapshot.pods[1].state, PodState::Failed);
        assert_eq!(snapshot.pods[1].reason, "CrashLoopBackOff");
        assert_eq!(snapshot.pods[1].restarts(), 4);
        assert_eq!(
            snapshot.counts,
            StateCounts {
                failed: 1,
                running: 1,
                total: 2,
                ..Default::default()
            }
        );
    }

    #[test]
    fn json_round_trips() {
        let text = r#"{"node": {"name": "n"}, "pods": [{"name": "x", "phase": "Pending",
            "labels": {"app": "x"}, "containers": [{"name": "c", "state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}]}"#;
        let snapshot = Snapshot::from_json(text).expect("valid");
        let again = Snapshot::from_json(&snapshot.to_json_pretty()).expect("own output reads back");
        assert_eq!(snapshot, again);
    }

    #[test]
    fn malformed_json_says_where_and_what_to_do() {
        let err = Snapshot::from_json("{\"pods\": [{\"name\": 3}]}").expect_err("wrong type");
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        assert!(text.contains("examples/snapshots"), "{text}");
        assert!(
            Snapshot::from_json(r#"{"podz": []}"#).is_err(),
            "unknown top-level fields are refused"
        );
    }
}
