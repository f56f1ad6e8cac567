//! The one loop both scopes' watches run: kube-runtime's watcher events applied to a
//! model of what a policy sees ([`WatchModel`]: this node's, or the cluster's), and a
//! snapshot published when the model is complete and shows something new. A batch of
//! events that arrived together makes one snapshot; a pod whose classification
//! changes with time alone (a crash loop's recovery) is classified again then; a
//! model may ask for builds to be spaced by their cost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use kube::runtime::watcher;
use tokio::sync::watch;

use super::watch::{Change, ClusterStatus};
use crate::state::{Snapshot, wall_clock_ms};

pub(super) type Events = BoxStream<'static, Result<Change, watcher::Error>>;

/// What a watch keeps between events.
pub(super) trait WatchModel: Send + 'static {
    /// Applies one event that arrived at `now_ms` (wall clock).
    fn apply(&mut self, change: Change, now_ms: u64);
    /// Every watcher has listed once.
    fn synced(&self) -> bool;
    /// The snapshot at `now_ms`, and when a pod's classification changes with time
    /// alone.
    fn snapshot(&mut self, now_ms: u64) -> (Snapshot, Option<u64>);
    /// Node scope: the node's name and whether it exists.
    fn node(&self) -> Option<(&str, bool)> {
        None
    }
    /// How long after a build that took `took` the next may start.
    fn pause_after_build(&self, _took: Duration) -> Duration {
        Duration::ZERO
    }
}

/// Objects of one watch. A list (the first, or a relist after the watch lost its
/// place) updates them as it goes; when it is done, what it did not name is gone.
pub(super) struct Listed<T> {
    live: HashMap<String, (u32, T)>,
    /// The current list: objects not seen in it are dropped when it is done.
    listing: u32,
    synced: bool,
}

impl<T> Listed<T> {
    /// Listed once since the watch started.
    pub(super) fn synced(&self) -> bool {
        self.synced
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.live.values().map(|(_, value)| value)
    }

    pub(super) fn new() -> Self {
        Listed {
            live: HashMap::new(),
            listing: 0,
            synced: false,
        }
    }

    /// Applies one watch event, converting its object with `convert`.
    pub(super) fn apply<K: kube::Resource>(
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
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                self.live
                    .insert(key(&object), (self.listing, convert(&object)));
            }
            watcher::Event::Delete(object) => {
                self.live.remove(&key(&object));
            }
            watcher::Event::Init => self.listing = self.listing.wrapping_add(1),
            watcher::Event::InitDone => {
                let listing = self.listing;
                self.live.retain(|_, (seen_in, _)| *seen_in == listing);
                self.synced = true;
            }
        }
    }
}

pub(super) async fn run<M: WatchModel>(
    mut events: SelectAll<Events>,
    mut model: M,
    sender: watch::Sender<Arc<Snapshot>>,
    status: Arc<ClusterStatus>,
) {
    let note = |item: Result<Change, watcher::Error>, model: &mut M| match item {
        Ok(change) => {
            status.events.fetch_add(1, Ordering::Relaxed);
            model.apply(change, wall_clock_ms());
        }
        Err(error) => {
            status.watch_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "watch failed; retrying with backoff");
        }
    };
    let mut reclassify_at: Option<tokio::time::Instant> = None;
    // A change after a quiet spell is built at once; after a build, the next waits
    // as long as the model asks, and the changes arriving meanwhile join it.
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
        match model.node() {
            Some((name, found)) => {
                let was_found = status.node_found.swap(found, Ordering::AcqRel);
                if !found && (first || was_found) {
                    tracing::warn!(node = %name, "no such node (yet); waiting for it");
                } else if found && !first && !was_found {
                    tracing::info!(node = %name, "the node exists now");
                }
            }
            None => status.node_found.store(true, Ordering::Release),
        }
        let started = Instant::now();
        let now_ms = wall_clock_ms();
        let (snapshot, reclassify) = model.snapshot(now_ms);
        let took = started.elapsed();
        next_build = tokio::time::Instant::now() + model.pause_after_build(took);
        tracing::debug!(
            build_ms = took.as_secs_f64() * 1000.0,
            nodes = snapshot.nodes.len(),
            pods = snapshot.counts.total,
            "snapshot built"
        );
        reclassify_at = reclassify
            .map(|at| tokio::time::Instant::now() + crate::timing::until_wall_clock(at, now_ms));
        if first && model.node().is_none() {
            tracing::info!(
                nodes = snapshot.nodes.len(),
                pods = snapshot.counts.total,
                "watching the cluster"
            );
        }
        if first || !snapshot.shows_the_same(&sender.borrow()) {
            status.snapshots.fetch_add(1, Ordering::Relaxed);
            sender.send_replace(Arc::new(snapshot));
        }
    }
}
