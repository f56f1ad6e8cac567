//! Kubernetes objects into the plain data a policy sees. Pure.

use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::state::{
    ContainerInfo, ContainerState, NodeInfo, PodInfo, Silence, silence_from_annotations,
};

fn millis(time: &Time) -> u64 {
    u64::try_from(time.0.as_millisecond()).unwrap_or(0)
}

fn container_info(status: &ContainerStatus, init: bool) -> ContainerInfo {
    let state = status.state.as_ref();
    let state = if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        ContainerState::Waiting {
            reason: waiting.reason.clone().unwrap_or_default(),
        }
    } else if let Some(running) = state.and_then(|s| s.running.as_ref()) {
        ContainerState::Running {
            started_ms: running.started_at.as_ref().map(millis),
        }
    } else if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        ContainerState::Terminated {
            reason: terminated.reason.clone().unwrap_or_default(),
            exit_code: terminated.exit_code,
        }
    } else {
        // No state yet: the kubelet has not started it.
        ContainerState::Waiting {
            reason: String::new(),
        }
    };
    ContainerInfo {
        name: status.name.clone(),
        init,
        ready: status.ready,
        restart_count: u32::try_from(status.restart_count).unwrap_or(0),
        state,
        last_termination_reason: status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.clone()),
    }
}

/// A pod as the policy sees it (unclassified: the snapshot classifies).
pub fn pod_info(pod: &Pod) -> PodInfo {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let condition_true = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    let init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten();
    let regular = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten();
    let containers = init
        .map(|c| container_info(c, true))
        .chain(regular.map(|c| container_info(c, false)))
        .collect();
    let (silence, silence_problem) = silence_of(meta.annotations.as_ref());
    PodInfo {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_string()),
        deleting: meta.deletion_timestamp.is_some(),
        ready: condition_true("Ready"),
        status_reason: status.and_then(|s| s.reason.clone()).unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        owner_kind: meta
            .owner_references
            .as_ref()
            .and_then(|owners| {
                owners
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .or(owners.first())
            })
            .map(|o| o.kind.clone())
            .unwrap_or_default(),
        start_time_ms: status.and_then(|s| s.start_time.as_ref()).map(millis),
        created_ms: meta.creation_timestamp.as_ref().map_or(0, millis),
        containers,
        silence,
        silence_problem,
        ..PodInfo::default()
    }
}

/// The object's `podlight.dev/silence`, or what is wrong with it.
fn silence_of(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> (Option<Silence>, Option<String>) {
    match annotations.and_then(silence_from_annotations) {
        None => (None, None),
        Some(Ok(silence)) => (Some(silence), None),
        Some(Err(problem)) => (None, Some(problem)),
    }
}

/// The node's conditions and scheduling flag. A node not (yet) seen is not ready.
pub fn node_info(name: &str, node: Option<&Node>) -> NodeInfo {
    let condition = |kind: &str| {
        node.and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    let (silence, silence_problem) = silence_of(node.and_then(|n| n.metadata.annotations.as_ref()));
    NodeInfo {
        name: name.to_string(),
        silence,
        silence_problem,
        ready: condition("Ready"),
        memory_pressure: condition("MemoryPressure"),
        disk_pressure: condition("DiskPressure"),
        pid_pressure: condition("PIDPressure"),
        unschedulable: node
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PodState, Snapshot};

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("valid pod")
    }

    #[test]
    fn crash_looping_pod_converts_and_classifies_as_failed() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "api", "namespace": "prod", "uid": "u1", "resourceVersion": "42",
                          "creationTimestamp": "2026-11-25T10:00:00Z", "labels": {"app": "api"},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-x", "uid": "o", "controller": true}]},
            "status": {"phase": "Running", "startTime": "2026-11-25T10:00:01Z",
                        "conditions": [{"type": "Ready", "status": "False"}],
                        "initContainerStatuses": [{"name": "init", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                                                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                        "containerStatuses": [{"name": "api", "ready": false, "restartCount": 5, "image": "i", "imageID": "",
                                               "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                               "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        }));
        let info = pod_info(&p);
        assert_eq!(
            (
                info.namespace.as_str(),
                info.name.as_str(),
                info.uid.as_str()
            ),
            ("prod", "api", "u1")
        );
        assert_eq!(info.owner_kind, "ReplicaSet");
        assert_eq!(info.created_ms, 1_795_600_800_000);
        assert_eq!(info.start_time_ms, Some(1_795_600_801_000));
        assert!(!info.ready && !info.deleting);
        assert_eq!(info.containers.len(), 2);
        assert!(info.containers[0].init);
        assert_eq!(
            info.containers[1].last_termination_reason.as_deref(),
            Some("OOMKilled")
        );
        let snapshot = Snapshot::new(NodeInfo::default(), vec![info], 0);
        assert_eq!(
            (snapshot.pods[0].state, snapshot.pods[0].reason.as_str()),
            (PodState::Failed, "CrashLoopBackOff")
        );
    }

    #[test]
    fn invisible_fields_do_not_change_the_pod_info() {
        let base = serde_json::json!({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "1"},
                                      "status": {"phase": "Running"}});
        let mut touched = base.clone();
        touched["metadata"]["resourceVersion"] = "2".into();
        touched["metadata"]["managedFields"] =
            serde_json::json!([{"manager": "kubectl", "operation": "Update"}]);
        touched["metadata"]["annotations"] = serde_json::json!({"touched": "yes"});
        assert_eq!(pod_info(&pod(base)), pod_info(&pod(touched)));
    }

    #[test]
    fn deletion_timestamp_means_deleting() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "a", "deletionTimestamp": "2026-11-25T10:00:00Z"},
                                       "status": {"phase": "Running"}}),
        );
        assert!(pod_info(&p).deleting);
    }

    #[test]
    fn node_conditions_and_cordon() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "True"},
                                       {"type": "MemoryPressure", "status": "False"}]}}))
        .expect("node");
        let info = node_info("n1", Some(&n));
        assert!(
            info.ready
                && info.disk_pressure
                && info.unschedulable
                && !info.memory_pressure
                && !info.pid_pressure
        );
        assert!(!node_info("n1", None).ready);
    }
}
