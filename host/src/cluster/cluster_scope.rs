//! The cluster scope's watch: every node and every pod (or those of some namespaces,
//! or matching a label selector), for one agent that shows the whole cluster.
//!
//! A cluster can hold a hundred thousand pods, so this watch keeps no API objects:
//! each event is converted at once into the plain record a policy sees and the Pod
//! is dropped. A snapshot counts every pod per node but lists only the pods that
//! need attention. A change after a quiet spell is built at once; after a build the
//! next one waits a few times its duration, gathering what arrives meanwhile, so a
//! churning cluster costs a bounded share of a core.

use super::backoff::WatchBackoff;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::convert::{node_info, pod_info};
use super::watch::{ClusterStatus, StateWatch, WatchOptions, pod_apis};
use crate::state::{
    NodeInfo, NodeSummary, PodInfo, Snapshot, StateCounts, classify, needs_attention,
    reclassified_at, wall_clock_ms,
};

/// Snapshots are built no more often than every BUILD_SHARE times their own build
/// time: at most a fifth of a core goes to building them however fast pods churn.
const BUILD_SHARE: u32 = 5;
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

impl StateWatch {
    /// Starts watching every node and the pods `options` selects (its `node` is not
    /// used) on the current tokio runtime.
    pub fn start_cluster(client: Client, options: WatchOptions) -> StateWatch {
        let empty = Arc::new(Snapshot::cluster(Vec::new(), Vec::new(), wall_clock_ms()));
        let (sender, snapshots) = watch::channel(empty);
        let status = Arc::new(ClusterStatus::default());
        let mut config = watcher::Config::default();
        if let Some(selector) = &options.label_selector {
            config = config.labels(selector);
        }
        let mut events: SelectAll<Changes> = SelectAll::new();
        for (index, api) in pod_apis(&client, &options).into_iter().enumerate() {
            events.push(
                watcher(api, config.clone())
                    .backoff(WatchBackoff::default())
                    .map(move |event| event.map(|e| Change::Pod(index, Box::new(e))))
                    .boxed(),
            );
        }
        let pod_sets = events.len();
        events.push(
            watcher(Api::<Node>::all(client), watcher::Config::default())
                .backoff(WatchBackoff::default())
                .map(|event| event.map(|e| Change::Node(Box::new(e))))
                .boxed(),
        );
        let model = ClusterModel::new(pod_sets);
        let task = tokio::spawn(run(events, model, sender, Arc::clone(&status)));
        StateWatch {
            snapshots,
            status,
            task,
        }
    }
}

enum Change {
    /// From the pod watch with this index (one per namespace, or one for all).
    Pod(usize, Box<watcher::Event<Pod>>),
    Node(Box<watcher::Event<Node>>),
}

type Changes = BoxStream<'static, Result<Change, watcher::Error>>;

/// A pod as kept between events: its node and what a policy sees.
struct KeptPod {
    node: Arc<str>,
    info: PodInfo,
}

/// Objects of one watch, with the buffer a relist fills before replacing them.
struct Listed<T> {
    live: HashMap<String, T>,
    relisting: Option<HashMap<String, T>>,
    synced: bool,
}

impl<T> Listed<T> {
    fn new() -> Self {
        Listed {
            live: HashMap::new(),
            relisting: None,
            synced: false,
        }
    }

    /// Applies one watch event, converting its object with `convert`.
    fn apply<K: kube::Resource>(
        &mut self,
        event: watcher::Event<K>,
        mut convert: impl FnMut(&K) -> T,
    ) {
        let key = |object: &K| {
            format!(
                "{}/{}",
                object.meta().namespace.as_deref().unwrap_or(""),
                object.meta().name.as_deref().unwrap_or("")
            )
        };
        match event {
            watcher::Event::Apply(object) => {
                self.live.insert(key(&object), convert(&object));
            }
            watcher::Event::Delete(object) => {
                self.live.remove(&key(&object));
            }
            watcher::Event::Init => self.relisting = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                let converted = convert(&object);
                self.relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(key(&object), converted);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    self.live = listed;
                }
                self.synced = true;
            }
        }
    }
}

/// Every node and every watched pod, as plain records.
struct ClusterModel {
    pods: Vec<Listed<KeptPod>>,
    nodes: Listed<NodeInfo>,
    /// Node names shared by the pods on them (one allocation per node, not per pod).
    node_names: HashMap<String, Arc<str>>,
}

impl ClusterModel {
    fn new(pod_sets: usize) -> Self {
        ClusterModel {
            pods: (0..pod_sets).map(|_| Listed::new()).collect(),
            nodes: Listed::new(),
            node_names: HashMap::new(),
        }
    }

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
        self.nodes.synced && self.pods.iter().all(|set| set.synced)
    }

    /// The snapshot now, and when a pod's classification changes with time alone.
    fn snapshot(&self, now_ms: u64) -> (Snapshot, Option<u64>) {
        let mut counts: HashMap<&str, StateCounts> = HashMap::with_capacity(self.nodes.live.len());
        let mut attention = Vec::new();
        let mut reclassify_at: Option<u64> = None;
        for pod in self.pods.iter().flat_map(|set| set.live.values()) {
            let (state, _) = classify(&pod.info, now_ms);
            counts.entry(&pod.node).or_default().add(state);
            if needs_attention(state) {
                attention.push(pod.info.clone());
            }
            if let Some(at) = reclassified_at(&pod.info, now_ms) {
                reclassify_at = Some(reclassify_at.map_or(at, |soonest| soonest.min(at)));
            }
        }
        let nodes = self
            .nodes
            .live
            .values()
            .map(|node| NodeSummary {
                node: node.clone(),
                counts: counts.get(node.name.as_str()).copied().unwrap_or_default(),
            })
            .collect();
        (Snapshot::cluster(nodes, attention, now_ms), reclassify_at)
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

/// Same nodes and same troubled pods: the time alone does not make a new snapshot.
fn visibly_equal(a: &Snapshot, b: &Snapshot) -> bool {
    a.nodes == b.nodes && a.pods == b.pods
}

async fn run(
    mut events: SelectAll<Changes>,
    mut model: ClusterModel,
    sender: watch::Sender<Arc<Snapshot>>,
    status: Arc<ClusterStatus>,
) {
    let note = |item: Result<Change, watcher::Error>, model: &mut ClusterModel| match item {
        Ok(change) => {
            status.events.fetch_add(1, Ordering::Relaxed);
            model.apply(change);
        }
        Err(error) => {
            status.watch_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "watch failed; retrying with backoff");
        }
    };
    let mut reclassify_at: Option<tokio::time::Instant> = None;
    // A change after a quiet spell is built at once; after a build, the next waits
    // long enough that building takes at most 1/BUILD_SHARE of a core, and the
    // changes arriving meanwhile join it.
    let mut next_build = tokio::time::Instant::now();
    loop {
        tokio::select! {
            item = events.next() => {
                let Some(item) = item else { return };
                note(item, &mut model);
            }
            () = tokio::time::sleep_until(reclassify_at.unwrap_or_else(tokio::time::Instant::now)),
                if reclassify_at.is_some() => reclassify_at = None,
        }
        loop {
            while let Some(Some(item)) = events.next().now_or_never() {
                note(item, &mut model);
            }
            if tokio::time::Instant::now() >= next_build {
                break;
            }
            tokio::select! {
                item = events.next() => match item {
                    Some(item) => note(item, &mut model),
                    None => return,
                },
                () = tokio::time::sleep_until(next_build) => {}
            }
        }
        if !model.synced() {
            continue;
        }
        let first = !status.synced.swap(true, Ordering::AcqRel);
        status.node_found.store(true, Ordering::Release);
        let started = Instant::now();
        let now_ms = wall_clock_ms();
        let (snapshot, reclassify) = model.snapshot(now_ms);
        let took = started.elapsed();
        next_build =
            tokio::time::Instant::now() + (took * (BUILD_SHARE - 1)).clamp(MIN_PAUSE, MAX_PAUSE);
        tracing::debug!(
            build_ms = took.as_secs_f64() * 1000.0,
            nodes = snapshot.nodes.len(),
            pods = snapshot.counts.total,
            "cluster snapshot built"
        );
        reclassify_at = reclassify.map(|at| {
            tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now_ms))
        });
        if first {
            tracing::info!(
                nodes = snapshot.nodes.len(),
                pods = snapshot.counts.total,
                "watching the cluster"
            );
        }
        if first || !visibly_equal(&snapshot, &sender.borrow()) {
            status.snapshots.fetch_add(1, Ordering::Relaxed);
            sender.send_replace(Arc::new(snapshot));
        }
    }
}
