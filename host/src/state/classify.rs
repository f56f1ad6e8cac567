//! Pure classification of a pod into one of the contract's states, with a reason.
//!
//! Facts behind the rules: a crash-looping pod keeps phase Running and shows
//! `CrashLoopBackOff` only as a container's waiting reason; image and config errors are
//! waiting reasons too; OOMKilled is a (last) termination reason; Evicted is phase Failed
//! with `status.reason`; a terminating pod keeps its phase and only gains a
//! deletionTimestamp. Between two restarts of a crash loop the kubelet shows the
//! container `terminated` (reason Error), then `waiting` CrashLoopBackOff, then
//! `running` again with `lastState.terminated` set: each of those is a failure until
//! the container has run for [`CRASH_RECOVERY_MS`].

use serde::{Deserialize, Serialize};

use super::{ContainerInfo, ContainerState, PodInfo};

/// The state of one pod. Declaration order is precedence: earlier states win.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PodState {
    Deleting,
    Failed,
    Succeeded,
    Pending,
    Unready,
    Running,
    #[default]
    Unknown,
}

impl PodState {
    pub const ALL: [PodState; 7] = [
        PodState::Deleting,
        PodState::Failed,
        PodState::Succeeded,
        PodState::Pending,
        PodState::Unready,
        PodState::Running,
        PodState::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PodState::Deleting => "deleting",
            PodState::Failed => "failed",
            PodState::Succeeded => "succeeded",
            PodState::Pending => "pending",
            PodState::Unready => "unready",
            PodState::Running => "running",
            PodState::Unknown => "unknown",
        }
    }
}

/// Container waiting reasons that mean the container cannot run without someone
/// fixing something.
const FAILED_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreStartHookError",
    "PostStartHookError",
];

const OOM_KILLED: &str = "OOMKilled";

/// The termination reason of a container that exited 0.
const COMPLETED: &str = "Completed";

/// How long a container whose previous run failed must run again before its pod
/// counts as recovered. Crash-looping containers often run for seconds between
/// restarts; a minute is longer than that and than the kubelet's first back-offs
/// (10, 20, 40 s), so the light stays red through a crash loop, yet an operator who
/// fixed the cause sees green a minute later.
pub const CRASH_RECOVERY_MS: u64 = 60_000;

/// Classifies a pod at `now_ms` (wall clock, ms since the Unix epoch), returning its
/// state and a short reason for people.
pub fn classify(pod: &PodInfo, now_ms: u64) -> (PodState, String) {
    if pod.deleting {
        return (PodState::Deleting, "Terminating".to_string());
    }
    if let Some(reason) = failure_reason(pod, now_ms) {
        return (PodState::Failed, reason);
    }
    match pod.phase.as_str() {
        "Succeeded" => (PodState::Succeeded, "Completed".to_string()),
        "Pending" => (
            PodState::Pending,
            waiting_reason(pod).unwrap_or("Pending").to_string(),
        ),
        "Running" if pod.ready => (PodState::Running, "Running".to_string()),
        "Running" => (
            PodState::Unready,
            waiting_reason(pod).unwrap_or("NotReady").to_string(),
        ),
        "" => (PodState::Unknown, "NoPhase".to_string()),
        other => (PodState::Unknown, other.to_string()),
    }
}

/// When the pod's classification will change with time alone, if it will: the
/// moment a container restarted after a failure has run for [`CRASH_RECOVERY_MS`].
pub fn reclassified_at(pod: &PodInfo, now_ms: u64) -> Option<u64> {
    if pod.deleting || pod.phase == "Failed" {
        return None;
    }
    pod.containers
        .iter()
        .filter(|c| last_run_failed(c).is_some())
        .filter_map(|c| match c.state {
            ContainerState::Running {
                started_ms: Some(started),
            } => Some(started.saturating_add(CRASH_RECOVERY_MS)),
            _ => None,
        })
        .filter(|&at| at > now_ms)
        .min()
}

fn failure_reason(pod: &PodInfo, now_ms: u64) -> Option<String> {
    if pod.phase == "Failed" {
        let reason = if pod.status_reason.is_empty() {
            "Failed"
        } else {
            &pod.status_reason
        };
        return Some(reason.to_string());
    }
    pod.containers
        .iter()
        .find_map(|c| container_failure(c, now_ms))
}

/// Why a container counts as failed, if it does:
/// - it waits for a reason that needs someone to fix something (CrashLoopBackOff,
///   image and config errors);
/// - it terminated with OOMKilled or a non-zero exit code (in a pod that is not
///   finished, so it is restarted or the pod has failed);
/// - its previous run failed (`lastState.terminated` with a reason other than
///   Completed) and it has not yet run for [`CRASH_RECOVERY_MS`] since it restarted
///   (it waits, or runs since less than that, or since a time the API did not give).
fn container_failure(c: &ContainerInfo, now_ms: u64) -> Option<String> {
    match &c.state {
        ContainerState::Waiting { reason } if FAILED_WAITING_REASONS.contains(&reason.as_str()) => {
            return Some(reason.clone());
        }
        ContainerState::Terminated { reason, exit_code }
            if reason == OOM_KILLED || *exit_code != 0 =>
        {
            return Some(if reason.is_empty() {
                format!("ExitCode{exit_code}")
            } else {
                reason.clone()
            });
        }
        // Ran to completion: whatever happened before, it is done now.
        ContainerState::Terminated { .. } => return None,
        ContainerState::Running {
            started_ms: Some(started),
        } if now_ms.saturating_sub(*started) >= CRASH_RECOVERY_MS => return None,
        _ => {}
    }
    last_run_failed(c).map(str::to_string)
}

/// The reason the container's previous run ended, if it was a failure.
fn last_run_failed(c: &ContainerInfo) -> Option<&str> {
    c.last_termination_reason
        .as_deref()
        .filter(|reason| !reason.is_empty() && *reason != COMPLETED)
}

fn waiting_reason(pod: &PodInfo) -> Option<&str> {
    pod.containers.iter().find_map(|c| match &c.state {
        ContainerState::Waiting { reason } if !reason.is_empty() => Some(reason.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;

    fn pod(phase: &str, ready: bool, containers: Vec<ContainerInfo>) -> PodInfo {
        PodInfo {
            namespace: "default".into(),
            name: "p".into(),
            phase: phase.into(),
            ready,
            containers,
            ..PodInfo::default()
        }
    }

    fn container(state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            name: "c".into(),
            state,
            ..ContainerInfo::default()
        }
    }

    fn waiting(reason: &str) -> ContainerInfo {
        container(ContainerState::Waiting {
            reason: reason.into(),
        })
    }

    #[test]
    fn running_and_ready_is_running() {
        let p = pod(
            "Running",
            true,
            vec![container(ContainerState::Running { started_ms: None })],
        );
        assert_eq!(classify(&p, NOW), (PodState::Running, "Running".into()));
    }

    #[test]
    fn running_not_ready_is_unready() {
        let p = pod(
            "Running",
            false,
            vec![container(ContainerState::Running { started_ms: None })],
        );
        assert_eq!(classify(&p, NOW).0, PodState::Unready);
    }

    #[test]
    fn crash_loop_in_phase_running_is_failed() {
        let mut c = waiting("CrashLoopBackOff");
        c.restart_count = 5;
        let p = pod("Running", false, vec![c]);
        assert_eq!(
            classify(&p, NOW),
            (PodState::Failed, "CrashLoopBackOff".into())
        );
    }

    #[test]
    fn image_and_config_errors_are_failed_even_while_pending() {
        for reason in [
            "ImagePullBackOff",
            "ErrImagePull",
            "InvalidImageName",
            "CreateContainerConfigError",
        ] {
            let p = pod("Pending", false, vec![waiting(reason)]);
            assert_eq!(classify(&p, NOW), (PodState::Failed, reason.into()));
        }
    }

    #[test]
    fn failing_init_container_fails_the_pod() {
        let mut init = waiting("CrashLoopBackOff");
        init.init = true;
        let p = pod("Pending", false, vec![init, waiting("PodInitializing")]);
        assert_eq!(classify(&p, NOW).0, PodState::Failed);
    }

    #[test]
    fn oom_killed_now_or_last_time_is_failed() {
        let now = container(ContainerState::Terminated {
            reason: "OOMKilled".into(),
            exit_code: 137,
        });
        assert_eq!(
            classify(&pod("Running", false, vec![now]), NOW).1,
            "OOMKilled"
        );
        let mut again = container(ContainerState::Running { started_ms: None });
        again.last_termination_reason = Some("OOMKilled".into());
        assert_eq!(
            classify(&pod("Running", true, vec![again]), NOW).0,
            PodState::Failed
        );
    }

    /// The container of a crash loop as the kubelet shows it in each phase of one
    /// restart cycle, `restarts` restarts in.
    fn crash_cycle(restarts: u32, started_ms: u64) -> [ContainerInfo; 3] {
        let last = (restarts > 0).then(|| "Error".to_string());
        let mut terminated = container(ContainerState::Terminated {
            reason: "Error".into(),
            exit_code: 1,
        });
        terminated.restart_count = restarts;
        terminated.last_termination_reason = last.clone();
        let mut backoff = waiting("CrashLoopBackOff");
        backoff.restart_count = restarts;
        backoff.last_termination_reason = Some("Error".into());
        let mut running = container(ContainerState::Running {
            started_ms: Some(started_ms),
        });
        running.ready = true;
        running.restart_count = restarts + 1;
        running.last_termination_reason = Some("Error".into());
        [terminated, backoff, running]
    }

    #[test]
    fn a_crash_loop_stays_failed_through_its_restarts() {
        for restarts in 0..3 {
            for c in crash_cycle(restarts, NOW - 5_000) {
                let state = format!("{:?}", c.state);
                let p = pod("Running", c.ready, vec![c]);
                assert_eq!(classify(&p, NOW).0, PodState::Failed, "{state}");
            }
        }
    }

    #[test]
    fn a_restarted_container_recovers_after_running_for_the_recovery_time() {
        let [.., running] = crash_cycle(2, NOW - CRASH_RECOVERY_MS);
        let p = pod("Running", true, vec![running]);
        assert_eq!(classify(&p, NOW), (PodState::Running, "Running".into()));
        assert_eq!(classify(&p, NOW - 1).0, PodState::Failed);
        assert_eq!(reclassified_at(&p, NOW - 1), Some(NOW));
        assert_eq!(reclassified_at(&p, NOW), None);
    }

    #[test]
    fn a_completed_run_after_a_failed_one_is_not_a_failure() {
        let mut init = container(ContainerState::Terminated {
            reason: "Completed".into(),
            exit_code: 0,
        });
        init.init = true;
        init.last_termination_reason = Some("Error".into());
        let mut c = container(ContainerState::Running {
            started_ms: Some(NOW),
        });
        c.ready = true;
        assert_eq!(
            classify(&pod("Running", true, vec![init, c]), NOW).0,
            PodState::Running
        );
        let mut exited_cleanly = container(ContainerState::Running {
            started_ms: Some(NOW),
        });
        exited_cleanly.last_termination_reason = Some("Completed".into());
        assert_eq!(
            classify(&pod("Running", false, vec![exited_cleanly]), NOW).0,
            PodState::Unready
        );
    }

    #[test]
    fn a_non_zero_exit_in_an_unfinished_pod_is_failed() {
        let exited = container(ContainerState::Terminated {
            reason: String::new(),
            exit_code: 3,
        });
        assert_eq!(
            classify(&pod("Running", false, vec![exited]), NOW),
            (PodState::Failed, "ExitCode3".into())
        );
    }

    #[test]
    fn evicted_is_failed_with_its_reason() {
        let mut p = pod("Failed", false, vec![]);
        p.status_reason = "Evicted".into();
        assert_eq!(classify(&p, NOW), (PodState::Failed, "Evicted".into()));
        assert_eq!(classify(&pod("Failed", false, vec![]), NOW).1, "Failed");
    }

    #[test]
    fn completed_job_is_succeeded_not_failed() {
        let done = container(ContainerState::Terminated {
            reason: "Completed".into(),
            exit_code: 0,
        });
        assert_eq!(
            classify(&pod("Succeeded", false, vec![done]), NOW).0,
            PodState::Succeeded
        );
    }

    #[test]
    fn pending_reports_the_waiting_reason() {
        let p = pod("Pending", false, vec![waiting("ContainerCreating")]);
        assert_eq!(
            classify(&p, NOW),
            (PodState::Pending, "ContainerCreating".into())
        );
        assert_eq!(classify(&pod("Pending", false, vec![]), NOW).1, "Pending");
    }

    #[test]
    fn deleting_wins_over_everything() {
        let mut p = pod("Running", false, vec![waiting("CrashLoopBackOff")]);
        p.deleting = true;
        assert_eq!(classify(&p, NOW).0, PodState::Deleting);
    }

    #[test]
    fn unknown_phase_is_unknown() {
        assert_eq!(
            classify(&pod("Unknown", false, vec![]), NOW).0,
            PodState::Unknown
        );
    }
}
