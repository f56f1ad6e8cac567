//! Node state: what podlight knows about the node and its pods, classified and frozen
//! into a [`Snapshot`] for the policy.
//!
//! The snapshot's JSON form (see [`Snapshot`]) is what `podlight snapshot` prints and
//! `podlight eval` reads.

mod classify;
mod silence;
mod snapshot;

pub use classify::{CRASH_RECOVERY_MS, PodState, classify, reclassified_at};
pub use silence::{
    MAX_SILENCE_REASON, SILENCE_ANNOTATION, SILENCE_FORMAT, Silence, parse_silence,
    silence_from_annotations,
};
pub use snapshot::{
    Alert, AlertState, ContainerInfo, ContainerState, NodeInfo, NodeSummary, PodInfo, Scope,
    Snapshot, SnapshotError, StateCounts, needs_attention, wall_clock_ms,
};
