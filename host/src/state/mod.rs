//! Node state: what podlight knows about the node and its pods, classified and frozen
//! into a [`Snapshot`] for the policy.
//!
//! The snapshot's JSON form (see [`Snapshot`]) is what `podlight snapshot` prints and
//! `podlight eval` reads.

mod classify;
mod snapshot;

pub use classify::{CRASH_RECOVERY_MS, PodState, classify, reclassified_at};
pub use snapshot::{
    ContainerInfo, ContainerState, NodeInfo, NodeSummary, PodInfo, Scope, Snapshot, SnapshotError,
    StateCounts, needs_attention, wall_clock_ms,
};
