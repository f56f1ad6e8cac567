//! Which agents the cluster should be running, as its workloads say: one per node
//! for each podlight DaemonSet (`app.kubernetes.io/name=podlight`), and the cluster
//! light when its Deployment exists — so `podlight status` can name a node whose agent
//! never reported (its pod pending, unpullable, crashing), as `kubectl rollout status`
//! compares with a DaemonSet's desired count. Reading needs `list` on daemonsets and
//! deployments (apps) and on pods in podlight's namespace.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::report::{Expected, ExpectedAgent};

/// The label the node agents' DaemonSet carries (kustomize base and Helm chart).
const AGENT_SELECTOR: &str = "app.kubernetes.io/name=podlight";
/// The cluster light's Deployment: `podlight-cluster` from the kustomize overlay,
/// `podlight` from the chart with `scope=cluster`.
const CLUSTER_LIGHT_SELECTOR: &str = "app.kubernetes.io/name in (podlight,podlight-cluster)";
/// The node name the cluster light reports under.
const CLUSTER_REPORT: &str = "cluster";

/// The agents `namespace`'s podlight workloads should run.
pub async fn expected_agents(
    client: kube::Client,
    namespace: &str,
) -> Result<Expected, kube::Error> {
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut expected = Expected::default();
    for daemonset in daemonsets
        .list(&ListParams::default().labels(AGENT_SELECTOR))
        .await?
    {
        let name = daemonset.metadata.name.clone().unwrap_or_default();
        let listed = pods_of(&pods, daemonset.spec.as_ref().map(|s| &s.selector)).await?;
        let mut nodes = 0;
        for pod in &listed {
            if let Some(node) = target_node(pod) {
                nodes += 1;
                expected.agents.push(ExpectedAgent {
                    node,
                    pod: pod.metadata.name.clone().unwrap_or_default(),
                    state: pod_state(pod),
                });
            }
        }
        let desired = daemonset.status.as_ref().map_or(0, |s| {
            usize::try_from(s.desired_number_scheduled).unwrap_or(0)
        });
        if desired > nodes {
            expected.shortfall.push(format!(
                "daemonset {name} should run on {desired} nodes but has pods on {nodes}"
            ));
        }
    }
    for deployment in deployments
        .list(&ListParams::default().labels(CLUSTER_LIGHT_SELECTOR))
        .await?
    {
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if wanted == 0 {
            continue;
        }
        let listed = pods_of(&pods, deployment.spec.as_ref().map(|s| &s.selector)).await?;
        let (pod, state) = match listed.first() {
            Some(pod) => (
                pod.metadata.name.clone().unwrap_or_default(),
                pod_state(pod),
            ),
            None => (
                format!(
                    "deployment {}",
                    deployment.metadata.name.unwrap_or_default()
                ),
                "no pod".to_string(),
            ),
        };
        expected.agents.push(ExpectedAgent {
            node: CLUSTER_REPORT.to_string(),
            pod,
            state,
        });
    }
    Ok(expected)
}

/// The pods a workload's selector picks (only its `matchLabels`, which podlight's
/// workloads use).
async fn pods_of(
    pods: &Api<Pod>,
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Vec<Pod>, kube::Error> {
    let Some(labels) = selector.and_then(|s| s.match_labels.as_ref()) else {
        return Ok(Vec::new());
    };
    let text = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok(pods.list(&ListParams::default().labels(&text)).await?.items)
}

/// The node a DaemonSet pod is for: where it is bound, or — not yet scheduled — the
/// node its required affinity names (the DaemonSet controller pins each pod so).
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = &spec.node_name {
        return Some(node.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|term| term.match_fields.iter().flatten())
        .find(|field| field.key == "metadata.name" && field.operator == "In")
        .and_then(|field| field.values.as_ref()?.first().cloned())
}

/// `Running`, `Pending (ImagePullBackOff)`, `Running (CrashLoopBackOff)`,
/// `Pending, not scheduled`.
fn pod_state(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let scheduled = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    match (waiting, scheduled) {
        (Some(reason), _) => format!("{phase} ({reason})"),
        (None, false) => format!("{phase}, not scheduled"),
        (None, true) => phase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a pod")
    }

    #[test]
    fn an_unscheduled_daemonset_pod_is_for_the_node_its_affinity_names() {
        let pending = pod(serde_json::json!({
            "metadata": {"name": "podlight-x"},
            "spec": {"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-d"]}]}
                ]}}}},
            "status": {"phase": "Pending"}
        }));
        assert_eq!(target_node(&pending).as_deref(), Some("node-d"));
        assert_eq!(pod_state(&pending), "Pending, not scheduled");
        let pulling = pod(serde_json::json!({
            "metadata": {"name": "podlight-y"},
            "spec": {"containers": [], "nodeName": "node-e"},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "podlight", "image": "x",
                "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        }));
        assert_eq!(target_node(&pulling).as_deref(), Some("node-e"));
        assert_eq!(pod_state(&pulling), "Pending (ImagePullBackOff)");
    }
}
