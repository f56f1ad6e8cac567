//! Watches this node's pods (field selector `spec.nodeName`, so the API server sends
//! only them) and the node object through kube-runtime watchers and reflector stores,
//! and publishes a snapshot whenever something a policy can see changes. The cluster
//! scope's watch (every node, every pod) is `cluster_scope.rs`; both publish through
//! the same [`StateWatch`].

use super::backoff::WatchBackoff;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::convert::{node_info, pod_info};
use crate::state::{Snapshot, wall_clock_ms};

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// The node to watch (node scope; the cluster scope watches every node).
    pub node: String,
    /// Only these namespaces; empty: all.
    pub namespaces: Vec<String>,
    /// Only pods matching this label selector.
    pub label_selector: Option<String>,
}

/// Counters for readiness and metrics.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    pub(super) synced: AtomicBool,
    pub(super) node_found: AtomicBool,
    pub(super) watch_errors: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) snapshots: AtomicU64,
}

impl ClusterStatus {
    /// Every watcher has listed once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The node object exists (known once synced).
    pub fn node_found(&self) -> bool {
        self.node_found.load(Ordering::Acquire)
    }

    /// Watch errors so far (each is followed by a retry with backoff).
    pub fn watch_errors(&self) -> u64 {
        self.watch_errors.load(Ordering::Relaxed)
    }

    /// Watch events received so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Snapshots published so far.
    pub fn snapshots(&self) -> u64 {
        self.snapshots.load(Ordering::Relaxed)
    }
}

/// The running watch. Dropping it stops the watchers.
pub struct StateWatch {
    pub(super) snapshots: watch::Receiver<Arc<Snapshot>>,
    pub(super) status: Arc<ClusterStatus>,
    pub(super) task: JoinHandle<()>,
}

impl Drop for StateWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Events = BoxStream<'static, Result<(), watcher::Error>>;

impl StateWatch {
    /// Starts watching one node on the current tokio runtime.
    pub fn start(client: Client, options: WatchOptions) -> StateWatch {
        let empty = Arc::new(Snapshot::new(
            node_info(&options.node, None),
            Vec::new(),
            wall_clock_ms(),
        ));
        let (sender, snapshots) = watch::channel(empty);
        let status = Arc::new(ClusterStatus::default());
        let mut config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", options.node));
        if let Some(selector) = &options.label_selector {
            config = config.labels(selector);
        }
        let mut events: SelectAll<Events> = SelectAll::new();
        let mut pod_stores = Vec::new();
        for api in pod_apis(&client, &options) {
            let (store, writer) = reflector::store();
            events.push(
                watcher(api, config.clone())
                    .backoff(WatchBackoff::default())
                    .reflect(writer)
                    .map_ok(|_| ())
                    .boxed(),
            );
            pod_stores.push(store);
        }
        let (node_store, node_writer) = reflector::store();
        let node_config =
            watcher::Config::default().fields(&format!("metadata.name={}", options.node));
        events.push(
            watcher(Api::<Node>::all(client), node_config)
                .backoff(WatchBackoff::default())
                .reflect(node_writer)
                .map_ok(|_| ())
                .boxed(),
        );
        let stores = Stores {
            pods: pod_stores,
            node: node_store,
            node_name: options.node,
        };
        let task = tokio::spawn(run(events, stores, sender, Arc::clone(&status)));
        StateWatch {
            snapshots,
            status,
            task,
        }
    }

    /// The latest snapshot, and changes as they come.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    pub fn status(&self) -> Arc<ClusterStatus> {
        Arc::clone(&self.status)
    }

    /// Waits until every watcher has listed once; false on timeout.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut snapshots = self.snapshots.clone();
        tokio::time::timeout(timeout, async {
            while !self.status.synced() {
                if snapshots.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && self.status.synced()
    }
}

/// One pod API per namespace asked for, or one for all.
pub(super) fn pod_apis(client: &Client, options: &WatchOptions) -> Vec<Api<Pod>> {
    if options.namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        options
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    }
}

struct Stores {
    pods: Vec<Store<Pod>>,
    node: Store<Node>,
    node_name: String,
}

impl Stores {
    fn ready(&self) -> bool {
        let ready = |f: &mut dyn FnMut() -> Option<()>| f().is_some();
        self.pods
            .iter()
            .all(|s| ready(&mut || s.wait_until_ready().now_or_never()?.ok()))
            && ready(&mut || self.node.wait_until_ready().now_or_never()?.ok())
    }

    fn snapshot(&self) -> Snapshot {
        let pods = self
            .pods
            .iter()
            .flat_map(|s| s.state())
            .map(|p| pod_info(&p))
            .collect();
        let node = self.node.state().into_iter().next();
        Snapshot::new(
            node_info(&self.node_name, node.as_deref()),
            pods,
            wall_clock_ms(),
        )
    }
}

/// Same node and pods: the time alone does not make a new snapshot.
fn visibly_equal(a: &Snapshot, b: &Snapshot) -> bool {
    a.node == b.node && a.pods == b.pods
}

async fn run(
    mut events: SelectAll<Events>,
    stores: Stores,
    sender: watch::Sender<Arc<Snapshot>>,
    status: Arc<ClusterStatus>,
) {
    let note = |item: Result<(), watcher::Error>| match item {
        Ok(()) => {
            status.events.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            status.watch_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "watch failed; retrying with backoff");
        }
    };
    // When a pod's classification changes with time alone (a restarted container
    // reaching its recovery time), the snapshot is built again then.
    let mut reclassify_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            item = events.next() => {
                let Some(item) = item else { return };
                note(item);
                // Take whatever else has already arrived, then build one snapshot for all.
                while let Some(Some(item)) = events.next().now_or_never() {
                    note(item);
                }
            }
            () = tokio::time::sleep_until(reclassify_at.unwrap_or_else(tokio::time::Instant::now)),
                if reclassify_at.is_some() => reclassify_at = None,
        }
        if !stores.ready() {
            continue;
        }
        let first = !status.synced.swap(true, Ordering::AcqRel);
        let node_found = !stores.node.is_empty();
        let was_found = status.node_found.swap(node_found, Ordering::AcqRel);
        if !node_found && (first || was_found) {
            tracing::warn!(node = %stores.node_name, "no such node (yet); waiting for it");
        } else if node_found && !first && !was_found {
            tracing::info!(node = %stores.node_name, "the node exists now");
        }
        let snapshot = stores.snapshot();
        reclassify_at = snapshot.reclassified_at_ms().map(|at| {
            tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(snapshot.now_ms))
        });
        if first || !visibly_equal(&snapshot, &sender.borrow()) {
            status.snapshots.fetch_add(1, Ordering::Relaxed);
            sender.send_replace(Arc::new(snapshot));
        }
    }
}
