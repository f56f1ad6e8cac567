//! Pure classification of a pod into one of the contract's states, with a reason.
//!
//! Facts behind the rules: a crash-looping pod keeps phase Running and shows
//! `CrashLoopBackOff` only as a container's waiting reason; image and config errors are
//! waiting reasons too; OOMKilled is a (last) termination reason; Evicted is phase Failed
//! with `status.reason`; a terminating pod keeps its phase and only gains a
//! deletionTimestamp.

use serde::{Deserialize, Serialize};

use super::{ContainerState, PodInfo};

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

/// Classifies a pod, returning its state and a short reason for people.
pub fn classify(pod: &PodInfo) -> (PodState, String) {
    if pod.deleting {
        return (PodState::Deleting, "Terminating".to_string());
    }
    if let Some(reason) = failure_reason(pod) {
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

fn failure_reason(pod: &PodInfo) -> Option<String> {
    if pod.phase == "Failed" {
        let reason = if pod.status_reason.is_empty() {
            "Failed"
        } else {
            &pod.status_reason
        };
        return Some(reason.to_string());
    }
    pod.containers.iter().find_map(|c| match &c.state {
        ContainerState::Waiting { reason } if FAILED_WAITING_REASONS.contains(&reason.as_str()) => {
            Some(reason.clone())
        }
        ContainerState::Terminated { reason, .. } if reason == OOM_KILLED => Some(reason.clone()),
        _ if c.last_termination_reason.as_deref() == Some(OOM_KILLED) => {
            Some(OOM_KILLED.to_string())
        }
        _ => None,
    })
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
    use crate::state::ContainerInfo;

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
        let p = pod("Running", true, vec![container(ContainerState::Running {})]);
        assert_eq!(classify(&p), (PodState::Running, "Running".into()));
    }

    #[test]
    fn running_not_ready_is_unready() {
        let p = pod(
            "Running",
            false,
            vec![container(ContainerState::Running {})],
        );
        assert_eq!(classify(&p).0, PodState::Unready);
    }

    #[test]
    fn crash_loop_in_phase_running_is_failed() {
        let mut c = waiting("CrashLoopBackOff");
        c.restart_count = 5;
        let p = pod("Running", false, vec![c]);
        assert_eq!(classify(&p), (PodState::Failed, "CrashLoopBackOff".into()));
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
            assert_eq!(classify(&p), (PodState::Failed, reason.into()));
        }
    }

    #[test]
    fn failing_init_container_fails_the_pod() {
        let mut init = waiting("CrashLoopBackOff");
        init.init = true;
        let p = pod("Pending", false, vec![init, waiting("PodInitializing")]);
        assert_eq!(classify(&p).0, PodState::Failed);
    }

    #[test]
    fn oom_killed_now_or_last_time_is_failed() {
        let now = container(ContainerState::Terminated {
            reason: "OOMKilled".into(),
            exit_code: 137,
        });
        assert_eq!(classify(&pod("Running", false, vec![now])).1, "OOMKilled");
        let mut again = container(ContainerState::Running {});
        again.last_termination_reason = Some("OOMKilled".into());
        assert_eq!(
            classify(&pod("Running", true, vec![again])).0,
            PodState::Failed
        );
    }

    #[test]
    fn evicted_is_failed_with_its_reason() {
        let mut p = pod("Failed", false, vec![]);
        p.status_reason = "Evicted".into();
        assert_eq!(classify(&p), (PodState::Failed, "Evicted".into()));
        assert_eq!(classify(&pod("Failed", false, vec![])).1, "Failed");
    }

    #[test]
    fn completed_job_is_succeeded_not_failed() {
        let done = container(ContainerState::Terminated {
            reason: "Completed".into(),
            exit_code: 0,
        });
        assert_eq!(
            classify(&pod("Succeeded", false, vec![done])).0,
            PodState::Succeeded
        );
    }

    #[test]
    fn pending_reports_the_waiting_reason() {
        let p = pod("Pending", false, vec![waiting("ContainerCreating")]);
        assert_eq!(
            classify(&p),
            (PodState::Pending, "ContainerCreating".into())
        );
        assert_eq!(classify(&pod("Pending", false, vec![])).1, "Pending");
    }

    #[test]
    fn deleting_wins_over_everything() {
        let mut p = pod("Running", false, vec![waiting("CrashLoopBackOff")]);
        p.deleting = true;
        assert_eq!(classify(&p).0, PodState::Deleting);
    }

    #[test]
    fn unknown_phase_is_unknown() {
        assert_eq!(
            classify(&pod("Unknown", false, vec![])).0,
            PodState::Unknown
        );
    }
}
