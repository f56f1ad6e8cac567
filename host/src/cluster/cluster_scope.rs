//! The cluster scope's model: every node and every pod (or those of some
//! namespaces, or matching a label selector), for one agent that shows the whole
//! cluster.
//!
//! A cluster can hold a hundred thousand pods, so this model keeps no API objects
//! and does no work per pod when a snapshot is built. Each event classifies its pod
//! at once and moves it between per-node counts; a pod that needs attention (or whose
//! state changes with time alone) keeps what a policy sees of it, a healthy one only
//! its node, state and silence. Building a snapshot then costs the nodes plus the pods
//! that need attention, however many pods there are. Classification is
//! [`classify`]'s alone: a pod whose state changes with time (a crash loop's
//! recovery) or whose silence ends is classified again when that time comes, so the
//! counts always equal a rebuild from every pod (a property test below checks that
//! for any event sequence).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;

use super::convert::{node_info, pod_info};
use super::watch::Change;
use super::watch_loop::{Listed, WatchModel};
use crate::state::{
    NodeInfo, NodeSummary, PodInfo, PodState, Snapshot, StateCounts, classify, needs_attention,
    reclassified_at,
};

/// Snapshots are built no more often than every BUILD_SHARE times their own build
/// time: at most a fifth of a core goes to building them however fast pods churn.
const BUILD_SHARE: u32 = 5;
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Names seen (nodes, namespaces), each stored once and referred to by index.
#[derive(Default)]
struct Interned {
    index: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interned {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        let index = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let shared: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&shared));
        self.index.insert(shared, index);
        index
    }

    fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", |name| name)
    }
}

/// A pod's identity: its namespace (interned) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PodKey {
    namespace: u32,
    name: Box<str>,
}

/// A pod as kept between events.
struct KeptPod {
    /// The watch it came from, and that watch's list it was last seen in.
    set: usize,
    listing: u32,
    node: u32,
    state: PodState,
    /// Its silence's end, while one is in force.
    silenced_until: Option<u64>,
    /// When it must be classified again: its state changes with time alone, or its
    /// silence ends.
    recheck_at: Option<u64>,
    /// What a policy sees of it, kept while it needs attention or will be classified
    /// again with time.
    info: Option<Box<PodInfo>>,
}

/// One pod watch: listed yet, and which of its lists is the current one.
#[derive(Default)]
struct PodSet {
    synced: bool,
    listing: u32,
}

/// Every node and every watched pod: per-node counts and the pods that need
/// attention, kept up to date per event.
pub(super) struct ClusterModel {
    pods: HashMap<PodKey, KeptPod>,
    sets: Vec<PodSet>,
    nodes: Listed<NodeInfo>,
    node_names: Interned,
    namespaces: Interned,
    /// Per node index: every pod's state, and those with a silence in force.
    counts: Vec<(StateCounts, StateCounts)>,
    attention: HashSet<PodKey>,
    rechecks: BTreeSet<(u64, PodKey)>,
    /// Every node ordered by name, each with its index into `counts`: sorted again
    /// only after a node event, so that a build after pod events (most of a
    /// cluster's traffic) only copies the nodes and their counts.
    nodes_by_name: Vec<(u32, NodeInfo)>,
    nodes_changed: bool,
}

impl ClusterModel {
    pub(super) fn new(pod_sets: usize) -> Self {
        ClusterModel {
            pods: HashMap::new(),
            sets: (0..pod_sets).map(|_| PodSet::default()).collect(),
            nodes: Listed::new(),
            node_names: Interned::default(),
            namespaces: Interned::default(),
            counts: Vec::new(),
            attention: HashSet::new(),
            rechecks: BTreeSet::new(),
            nodes_by_name: Vec::new(),
            nodes_changed: false,
        }
    }

    /// The nodes' summaries with their pods' counts now, ordered by name.
    fn node_summaries(&mut self) -> Vec<NodeSummary> {
        if self.nodes_changed {
            let node_names = &mut self.node_names;
            let mut nodes: Vec<(u32, NodeInfo)> = self
                .nodes
                .values()
                .map(|node| (node_names.intern(&node.name), node.clone()))
                .collect();
            nodes.sort_by(|(_, a), (_, b)| a.name.cmp(&b.name));
            self.nodes_by_name = nodes;
            self.nodes_changed = false;
        }
        self.nodes_by_name
            .iter()
            .map(|(index, node)| {
                let (counts, silenced) = self
                    .counts
                    .get(*index as usize)
                    .copied()
                    .unwrap_or_default();
                NodeSummary {
                    node: node.clone(),
                    counts,
                    silenced,
                }
            })
            .collect()
    }

    fn key(&mut self, pod: &Pod) -> PodKey {
        PodKey {
            namespace: self
                .namespaces
                .intern(pod.metadata.namespace.as_deref().unwrap_or("")),
            name: pod.metadata.name.as_deref().unwrap_or("").into(),
        }
    }

    fn apply_pod(&mut self, set: usize, event: watcher::Event<Pod>, now_ms: u64) {
        let Some(listing) = self.sets.get(set).map(|s| s.listing) else {
            return;
        };
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = self.key(&pod);
                let node = self.node_names.intern(
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .unwrap_or(""),
                );
                self.forget(&key);
                self.keep(key, set, listing, node, pod_info(&pod), now_ms);
            }
            watcher::Event::Delete(pod) => {
                let key = self.key(&pod);
                self.forget(&key);
            }
            watcher::Event::Init => {
                if let Some(s) = self.sets.get_mut(set) {
                    s.listing = s.listing.wrapping_add(1);
                }
            }
            watcher::Event::InitDone => {
                // The list replaces what the watch had: what it did not name is gone.
                let gone: Vec<PodKey> = self
                    .pods
                    .iter()
                    .filter(|(_, pod)| pod.set == set && pod.listing != listing)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in gone {
                    self.forget(&key);
                }
                if let Some(s) = self.sets.get_mut(set) {
                    s.synced = true;
                }
            }
        }
    }

    /// Classifies a pod at `now_ms` and counts it.
    fn keep(
        &mut self,
        key: PodKey,
        set: usize,
        listing: u32,
        node: u32,
        info: PodInfo,
        now_ms: u64,
    ) {
        let (state, _) = classify(&info, now_ms);
        let silenced_until = info
            .silence
            .as_ref()
            .filter(|s| s.in_force(now_ms))
            .map(|s| s.until_ms);
        let reclassify = reclassified_at(&info, now_ms);
        let recheck_at = reclassify.into_iter().chain(silenced_until).min();
        let keeps_info = needs_attention(state) || reclassify.is_some();
        let slot = node as usize;
        if self.counts.len() <= slot {
            self.counts.resize(slot + 1, Default::default());
        }
        if let Some((all, silenced)) = self.counts.get_mut(slot) {
            all.add(state);
            if silenced_until.is_some() {
                silenced.add(state);
            }
        }
        if needs_attention(state) {
            self.attention.insert(key.clone());
        }
        if let Some(at) = recheck_at {
            self.rechecks.insert((at, key.clone()));
        }
        self.pods.insert(
            key,
            KeptPod {
                set,
                listing,
                node,
                state,
                silenced_until,
                recheck_at,
                info: keeps_info.then(|| Box::new(info)),
            },
        );
    }

    /// Takes a pod out of the counts, the attention set and the rechecks.
    fn forget(&mut self, key: &PodKey) -> Option<KeptPod> {
        let pod = self.pods.remove(key)?;
        if let Some((all, silenced)) = self.counts.get_mut(pod.node as usize) {
            all.remove(pod.state);
            if pod.silenced_until.is_some() {
                silenced.remove(pod.state);
            }
        }
        if needs_attention(pod.state) {
            self.attention.remove(key);
        }
        if let Some(at) = pod.recheck_at {
            self.rechecks.remove(&(at, key.clone()));
        }
        Some(pod)
    }

    /// Classifies again every pod whose time has come (a crash loop's recovery, a
    /// silence's end).
    fn recheck_due(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.rechecks.first() {
            if *at > now_ms {
                break;
            }
            let Some((_, key)) = self.rechecks.pop_first() else {
                break;
            };
            let Some(pod) = self.forget(&key) else {
                continue;
            };
            let info = match pod.info {
                Some(info) => *info,
                // Kept without what a policy sees: healthy, and only its silence ends.
                None => {
                    if let Some((all, _)) = self.counts.get_mut(pod.node as usize) {
                        all.add(pod.state);
                    }
                    self.pods.insert(
                        key,
                        KeptPod {
                            silenced_until: None,
                            recheck_at: None,
                            ..pod
                        },
                    );
                    continue;
                }
            };
            self.keep(key, pod.set, pod.listing, pod.node, info, now_ms);
        }
    }
}

impl WatchModel for ClusterModel {
    fn apply(&mut self, change: Change, now_ms: u64) {
        match change {
            Change::Pod(index, event) => self.apply_pod(index, *event, now_ms),
            Change::Node(event) => {
                self.nodes
                    .apply(*event, |node| node_info(&node.name_any(), Some(node)));
                self.nodes_changed = true;
            }
        }
    }

    fn synced(&self) -> bool {
        self.nodes.synced() && self.sets.iter().all(|s| s.synced)
    }

    /// The snapshot now, and when a pod's classification changes with time alone.
    fn snapshot(&mut self, now_ms: u64) -> (Snapshot, Option<u64>) {
        self.recheck_due(now_ms);
        let nodes = self.node_summaries();
        let attention = self
            .attention
            .iter()
            .filter_map(|key| {
                let pod = self.pods.get(key)?;
                let mut info = PodInfo::clone(pod.info.as_ref()?);
                info.node = self.node_names.name(pod.node).to_string();
                Some(info)
            })
            .collect();
        let snapshot = Snapshot::cluster(nodes, attention, now_ms);
        let reclassify_at = self
            .rechecks
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(snapshot.reclassified_at_ms())
            .min();
        (snapshot, reclassify_at)
    }

    fn pause_after_build(&self, took: Duration) -> Duration {
        (took * (BUILD_SHARE - 1)).clamp(MIN_PAUSE, MAX_PAUSE)
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod equivalence {
    //! The model checked against a rebuild from every pod, for the property test
    //! below and the `cluster_model` fuzz target.

    use std::collections::HashMap;

    use arbitrary::Unstructured;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::ResourceExt;
    use kube::runtime::watcher;
    use serde_json::{Value, json};

    use super::ClusterModel;
    use crate::cluster::convert::{node_info, pod_info};
    use crate::cluster::watch::Change;
    use crate::cluster::watch_loop::{Listed, WatchModel};
    use crate::state::{NodeInfo, reclassified_at};
    use crate::state::{NodeSummary, PodInfo, Snapshot, StateCounts, classify, needs_attention};

    /// The wall clock when a generated sequence starts (2026-11-25).
    pub const START_MS: u64 = 1_795_600_800_000;

    /// One step of a watch as the model sees it.
    #[derive(Debug, Clone)]
    pub enum Step {
        Pod {
            set: usize,
            event: Box<watcher::Event<Pod>>,
        },
        Node(Box<watcher::Event<Node>>),
        /// The clock moves on by this many milliseconds and a snapshot is built.
        Build {
            after_ms: u64,
        },
    }

    /// Every pod as the API gave it, with the watch it came from.
    struct Rebuilt {
        pods: Vec<Listed<(String, PodInfo)>>,
        nodes: Listed<NodeInfo>,
    }

    impl Rebuilt {
        /// A snapshot built from every pod at once: each classified at `now_ms`.
        fn snapshot(&self, now_ms: u64) -> (Snapshot, Option<u64>) {
            let mut counts: HashMap<&str, (StateCounts, StateCounts)> = HashMap::new();
            let mut attention = Vec::new();
            let mut reclassify_at: Option<u64> = None;
            for (node, info) in self.pods.iter().flat_map(Listed::values) {
                let (state, _) = classify(info, now_ms);
                let (all, silenced) = counts.entry(node).or_default();
                all.add(state);
                let silence_ends = info
                    .silence
                    .as_ref()
                    .filter(|s| s.in_force(now_ms))
                    .map(|s| s.until_ms);
                if silence_ends.is_some() {
                    silenced.add(state);
                }
                if needs_attention(state) {
                    let mut info = info.clone();
                    info.node.clone_from(node);
                    attention.push(info);
                }
                let changes = reclassified_at(info, now_ms)
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
    }

    /// Runs `steps` through the model and through a rebuild; at every build, the
    /// first difference, if any.
    pub fn first_difference(sets: usize, start_ms: u64, steps: &[Step]) -> Option<String> {
        let sets = sets.max(1);
        let mut model = ClusterModel::new(sets);
        let mut rebuilt = Rebuilt {
            pods: (0..sets).map(|_| Listed::new()).collect(),
            nodes: Listed::new(),
        };
        let mut now_ms = start_ms;
        for (index, step) in steps.iter().enumerate() {
            match step {
                Step::Pod { set, event } => {
                    let set = set % sets;
                    rebuilt.pods[set].apply(*event.clone(), |pod: &Pod| {
                        let node = pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default();
                        (node, pod_info(pod))
                    });
                    model.apply(Change::Pod(set, event.clone()), now_ms);
                }
                Step::Node(event) => {
                    rebuilt.nodes.apply(*event.clone(), |node| {
                        node_info(&node.name_any(), Some(node))
                    });
                    model.apply(Change::Node(event.clone()), now_ms);
                }
                Step::Build { after_ms } => {
                    now_ms = now_ms.saturating_add(*after_ms);
                    if model.synced() != rebuilt_synced(&rebuilt) {
                        return Some(format!("step {index}: synced differs"));
                    }
                    let ours = model.snapshot(now_ms);
                    let theirs = rebuilt.snapshot(now_ms);
                    if ours != theirs {
                        return Some(format!(
                            "step {index} at {now_ms}: incremental {:?}\nrebuilt {:?}",
                            ours, theirs
                        ));
                    }
                }
            }
        }
        None
    }

    fn rebuilt_synced(rebuilt: &Rebuilt) -> bool {
        rebuilt.nodes.synced() && rebuilt.pods.iter().all(Listed::synced)
    }

    const NAMESPACES: [&str; 2] = ["a", "b"];

    fn time(ms: u64) -> String {
        let seconds = i64::try_from(ms / 1000).unwrap_or(0);
        k8s_openapi::jiff::Timestamp::from_second(seconds)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// A pod in one of the states the kubelet shows, on one of a few nodes (or none),
    /// perhaps being deleted, perhaps silenced (a silence that may have ended).
    fn arbitrary_pod(
        input: &mut Unstructured<'_>,
        namespace: &str,
        now_ms: u64,
    ) -> arbitrary::Result<Pod> {
        let name = format!("p{}", input.int_in_range(0..=11u8)?);
        let node = match input.int_in_range(0..=6u8)? {
            6 => Value::Null,
            n => json!(format!("n{n}")),
        };
        let crashed = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        let started = time(now_ms.saturating_sub(input.int_in_range(0..=90_000u64)?));
        let container = |ready: bool, state: Value, last: Value| {
            json!([{"name": "c", "image": "i", "imageID": "", "ready": ready,
                    "restartCount": if ready { 0 } else { 3 }, "state": state, "lastState": last}])
        };
        let running = json!({"running": {"startedAt": started}});
        let (phase, ready, containers) = match input.int_in_range(0..=7u8)? {
            0 => ("Running", true, container(true, running, json!({}))),
            1 => ("Running", false, container(false, running, json!({}))),
            2 => (
                "Pending",
                false,
                container(
                    false,
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    json!({}),
                ),
            ),
            3 => (
                "Running",
                false,
                container(
                    false,
                    json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                    crashed,
                ),
            ),
            4 => ("Running", true, container(true, running, crashed)),
            5 => (
                "Succeeded",
                false,
                container(
                    false,
                    json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                    json!({}),
                ),
            ),
            6 => ("Failed", false, json!([])),
            _ => ("Running", true, json!([])),
        };
        let mut metadata = json!({"name": name, "namespace": namespace});
        if input.ratio(1, 8)? {
            metadata["deletionTimestamp"] = json!(time(now_ms));
        }
        if input.ratio(1, 3)? {
            let until = (now_ms + input.int_in_range(0..=80_000u64)?).saturating_sub(20_000);
            metadata["annotations"] = json!({"podlight.dev/silence":
                json!({"until": time(until), "reason": "known"}).to_string()});
        }
        serde_json::from_value(json!({
            "metadata": metadata,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                       "containerStatuses": containers},
        }))
        .map_err(|_| arbitrary::Error::IncorrectFormat)
    }

    fn arbitrary_node(input: &mut Unstructured<'_>) -> arbitrary::Result<Node> {
        let ready = if input.ratio(1, 4)? { "False" } else { "True" };
        serde_json::from_value(json!({
            "metadata": {"name": format!("n{}", input.int_in_range(0..=5u8)?)},
            "spec": {"unschedulable": input.ratio(1, 5)?},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .map_err(|_| arbitrary::Error::IncorrectFormat)
    }

    /// One or two pod watches (all namespaces, or one per namespace) listing, then a
    /// mix of pod and node changes, deletions, relists and builds with the clock
    /// moving on.
    pub fn arbitrary_steps(input: &mut Unstructured<'_>) -> arbitrary::Result<(usize, Vec<Step>)> {
        let sets = input.int_in_range(1..=2usize)?;
        let set_of = |namespace: usize| if sets == 1 { 0 } else { namespace };
        let mut now_ms = START_MS;
        let mut steps = Vec::new();
        let pod_step =
            |input: &mut Unstructured<'_>, now_ms: u64, make: fn(Pod) -> watcher::Event<Pod>| {
                let namespace = input.int_in_range(0..=1usize)?;
                let pod = arbitrary_pod(input, NAMESPACES[namespace], now_ms)?;
                Ok(Step::Pod {
                    set: set_of(namespace),
                    event: Box::new(make(pod)),
                })
            };
        for set in 0..sets {
            steps.push(Step::Pod {
                set,
                event: Box::new(watcher::Event::Init),
            });
        }
        for _ in 0..input.int_in_range(0..=20u8)? {
            steps.push(pod_step(input, now_ms, watcher::Event::InitApply)?);
        }
        for set in 0..sets {
            steps.push(Step::Pod {
                set,
                event: Box::new(watcher::Event::InitDone),
            });
        }
        steps.push(Step::Node(Box::new(watcher::Event::Init)));
        for _ in 0..input.int_in_range(0..=6u8)? {
            steps.push(Step::Node(Box::new(watcher::Event::InitApply(
                arbitrary_node(input)?,
            ))));
        }
        steps.push(Step::Node(Box::new(watcher::Event::InitDone)));
        for _ in 0..input.int_in_range(0..=300u16)? {
            match input.int_in_range(0..=19u8)? {
                0..=9 => steps.push(pod_step(input, now_ms, watcher::Event::Apply)?),
                10..=11 => steps.push(pod_step(input, now_ms, watcher::Event::Delete)?),
                12 => {
                    // A relist (the watch lost its place): some pods again, then done.
                    let set = input.int_in_range(0..=sets - 1)?;
                    steps.push(Step::Pod {
                        set,
                        event: Box::new(watcher::Event::Init),
                    });
                    for _ in 0..input.int_in_range(0..=10u8)? {
                        let step = pod_step(input, now_ms, watcher::Event::InitApply)?;
                        if matches!(&step, Step::Pod { set: of, .. } if *of == set) {
                            steps.push(step);
                        }
                        if input.ratio(1, 4)? {
                            steps.push(Step::Build {
                                after_ms: input.int_in_range(0..=5_000u64)?,
                            });
                        }
                    }
                    steps.push(Step::Pod {
                        set,
                        event: Box::new(watcher::Event::InitDone),
                    });
                }
                13 => steps.push(Step::Node(Box::new(watcher::Event::Apply(arbitrary_node(
                    input,
                )?)))),
                14 => steps.push(Step::Node(Box::new(watcher::Event::Delete(
                    arbitrary_node(input)?,
                )))),
                _ => {
                    let after_ms = input.int_in_range(0..=40_000u64)?;
                    now_ms += after_ms;
                    steps.push(Step::Build { after_ms });
                }
            }
        }
        Ok((sets, steps))
    }
}

#[cfg(test)]
mod tests {
    use arbitrary::Unstructured;

    use super::equivalence::{START_MS, arbitrary_steps, first_difference};

    /// Bytes from a small deterministic generator (xorshift64*), so that a failure
    /// names its seed.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn incremental_counts_equal_a_rebuild_from_every_pod_for_any_event_sequence() {
        let mut builds = 0;
        for seed in 1..=400u64 {
            let data = bytes(seed, 16 * 1024);
            let Ok((sets, steps)) = arbitrary_steps(&mut Unstructured::new(&data)) else {
                panic!("seed {seed}: the generator ran out of bytes");
            };
            builds += steps
                .iter()
                .filter(|s| matches!(s, super::equivalence::Step::Build { .. }))
                .count();
            if let Some(difference) = first_difference(sets, START_MS, &steps) {
                panic!("seed {seed} ({sets} pod watches): {difference}");
            }
        }
        assert!(builds > 10_000, "only {builds} snapshots compared");
    }
}
