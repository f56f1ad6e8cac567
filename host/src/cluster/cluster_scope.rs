//! The cluster scope's model: every node and every pod (or those of some
//! namespaces, or matching a label selector), for one agent that shows the whole
//! cluster.
//!
//! A cluster can hold a hundred thousand pods, so this model keeps no API objects:
//! each event is converted at once into the plain record a policy sees and the Pod
//! is dropped. A snapshot counts every pod per node but lists only the pods that
//! need attention. A change after a quiet spell is built at once; after a build the
//! next one waits a few times its duration, gathering what arrives meanwhile, so a
//! churning cluster costs a bounded share of a core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::convert::{node_info, pod_info};
use super::watch::Change;
use super::watch_loop::{Listed, WatchModel};
use crate::state::{
    NodeInfo, NodeSummary, PodInfo, Snapshot, StateCounts, classify, needs_attention,
    reclassified_at,
};

/// Snapshots are built no more often than every BUILD_SHARE times their own build
/// time: at most a fifth of a core goes to building them however fast pods churn.
const BUILD_SHARE: u32 = 5;
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// A pod as kept between events: its node and what a policy sees.
struct KeptPod {
    node: Arc<str>,
    info: PodInfo,
}

/// Every node and every watched pod, as plain records.
pub(super) struct ClusterModel {
    pods: Vec<Listed<KeptPod>>,
    nodes: Listed<NodeInfo>,
    /// Node names shared by the pods on them (one allocation per node, not per pod).
    node_names: HashMap<String, Arc<str>>,
}

impl ClusterModel {
    pub(super) fn new(pod_sets: usize) -> Self {
        ClusterModel {
            pods: (0..pod_sets).map(|_| Listed::new()).collect(),
            nodes: Listed::new(),
            node_names: HashMap::new(),
        }
    }
}

impl WatchModel for ClusterModel {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Pod(index, event) => {
                let names = &mut self.node_names;
                if let Some(set) = self.pods.get_mut(index) {
                    set.apply(*event, |pod| KeptPod {
                        node: shared_name(names, pod),
                        info: pod_info(pod),
                    });
                }
            }
            Change::Node(event) => self
                .nodes
                .apply(*event, |node| node_info(&node.name_any(), Some(node))),
        }
    }

    fn synced(&self) -> bool {
        self.nodes.synced() && self.pods.iter().all(Listed::synced)
    }

    /// The snapshot now, and when a pod's classification changes with time alone.
    fn snapshot(&self, now_ms: u64) -> (Snapshot, Option<u64>) {
        let mut counts: HashMap<&str, (StateCounts, StateCounts)> =
            HashMap::with_capacity(self.nodes.len());
        let mut attention = Vec::new();
        let mut reclassify_at: Option<u64> = None;
        for pod in self.pods.iter().flat_map(Listed::values) {
            let (state, _) = classify(&pod.info, now_ms);
            let (all, silenced) = counts.entry(&pod.node).or_default();
            all.add(state);
            let silence_ends = pod
                .info
                .silence
                .as_ref()
                .filter(|s| s.in_force(now_ms))
                .map(|s| s.until_ms);
            if silence_ends.is_some() {
                silenced.add(state);
            }
            if needs_attention(state) {
                let mut info = pod.info.clone();
                info.node = pod.node.to_string();
                attention.push(info);
            }
            let changes = reclassified_at(&pod.info, now_ms)
                .into_iter()
                .chain(silence_ends);
            reclassify_at = changes.chain(reclassify_at).min();
        }
        let nodes = self
            .nodes
            .values()
            .map(|node| {
                let (counts, silenced) =
                    counts.get(node.name.as_str()).copied().unwrap_or_default();
                NodeSummary {
                    node: node.clone(),
                    counts,
                    silenced,
                }
            })
            .collect();
        let snapshot = Snapshot::cluster(nodes, attention, now_ms);
        let reclassify_at = reclassify_at
            .into_iter()
            .chain(snapshot.reclassified_at_ms())
            .min();
        (snapshot, reclassify_at)
    }

    fn pause_after_build(&self, took: Duration) -> Duration {
        (took * (BUILD_SHARE - 1)).clamp(MIN_PAUSE, MAX_PAUSE)
    }
}

/// The pod's node name, shared with every other pod on that node.
fn shared_name(names: &mut HashMap<String, Arc<str>>, pod: &Pod) -> Arc<str> {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if let Some(shared) = names.get(name) {
        return Arc::clone(shared);
    }
    let shared: Arc<str> = Arc::from(name);
    names.insert(name.to_string(), Arc::clone(&shared));
    shared
}
