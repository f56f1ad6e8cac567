//! The demo: a scripted node, looping — pods appear, go pending → running, one
//! crash-loops, one is deleted, all recover — fed through the same snapshot →
//! policy → frame → device path as a real cluster.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::state::{ContainerInfo, ContainerState, NodeInfo, PodInfo, Snapshot, wall_clock_ms};

/// The scenario's steps, in order; it loops.
pub const DEMO_STEPS: usize = 6;

fn pod(
    name: &str,
    phase: &str,
    ready: bool,
    state: ContainerState,
    restarts: u32,
    deleting: bool,
) -> PodInfo {
    PodInfo {
        namespace: "demo".into(),
        name: name.into(),
        uid: format!("demo-{name}"),
        phase: phase.into(),
        ready,
        deleting,
        owner_kind: "ReplicaSet".into(),
        labels: [(
            "app".to_string(),
            name.trim_end_matches(char::is_numeric)
                .trim_end_matches('-')
                .to_string(),
        )]
        .into(),
        containers: vec![ContainerInfo {
            name: "main".into(),
            ready,
            restart_count: restarts,
            state,
            ..ContainerInfo::default()
        }],
        ..PodInfo::default()
    }
}

/// The node at step `step` (mod [`DEMO_STEPS`]).
pub fn demo_snapshots(step: usize, now_ms: u64) -> Snapshot {
    let creating = || ContainerState::Waiting {
        reason: "ContainerCreating".into(),
    };
    let running = || ContainerState::Running { started_ms: None };
    let crashing = || ContainerState::Waiting {
        reason: "CrashLoopBackOff".into(),
    };
    let pods = match step % DEMO_STEPS {
        0 => vec![
            pod("web-1", "Pending", false, creating(), 0, false),
            pod("web-2", "Pending", false, creating(), 0, false),
            pod("api-1", "Pending", false, creating(), 0, false),
        ],
        1 => vec![
            pod("web-1", "Running", true, running(), 0, false),
            pod("web-2", "Running", true, running(), 0, false),
            pod("api-1", "Pending", false, creating(), 0, false),
        ],
        2 => vec![
            pod("web-1", "Running", true, running(), 0, false),
            pod("web-2", "Running", true, running(), 0, false),
            pod("api-1", "Running", true, running(), 0, false),
        ],
        3 => vec![
            pod("web-1", "Running", true, running(), 0, false),
            pod("web-2", "Running", true, running(), 0, false),
            pod("api-1", "Running", false, crashing(), 3, false),
        ],
        4 => vec![
            pod("web-1", "Running", true, running(), 0, false),
            pod("web-2", "Running", true, running(), 0, true),
            pod("api-1", "Running", true, running(), 4, false),
        ],
        _ => vec![
            pod("web-1", "Running", true, running(), 0, false),
            pod("api-1", "Running", true, running(), 4, false),
            pod("web-3", "Running", true, running(), 0, false),
        ],
    };
    let node = NodeInfo {
        name: "demo-node".into(),
        ready: true,
        ..NodeInfo::default()
    };
    Snapshot::new(node, pods, now_ms)
}

/// Plays the scenario into a snapshot channel, one step per `step`.
pub struct DemoScenario {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DemoScenario {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DemoScenario {
    pub fn start(step: Duration) -> DemoScenario {
        let (tx, snapshots) = watch::channel(Arc::new(demo_snapshots(0, wall_clock_ms())));
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                tokio::time::sleep(step).await;
                n += 1;
                tx.send_replace(Arc::new(demo_snapshots(n, wall_clock_ms())));
            }
        });
        DemoScenario { snapshots, task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PodState;

    #[test]
    fn the_scenario_walks_through_every_colour() {
        let states = |step| demo_snapshots(step, 0).counts;
        assert_eq!(states(0).pending, 3);
        assert_eq!((states(1).running, states(1).pending), (2, 1));
        assert_eq!(states(2).running, 3);
        assert_eq!(states(3).of(PodState::Failed), 1);
        assert_eq!(states(4).deleting, 1);
        assert_eq!(
            (states(5).running, states(5).failed, states(5).deleting),
            (3, 0, 0)
        );
        assert_eq!(states(DEMO_STEPS), states(0), "loops");
    }
}
