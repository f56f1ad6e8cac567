//! Pods and nodes for tests, driven through the API like a kubelet would: created with
//! `spec.nodeName` set, states written to the status subresource.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use podlight::state::Snapshot;
use serde_json::{Value, json};
use tokio::sync::watch;

pub async fn create_node(client: &kube::Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"podlight.dev/stick": "true"}}}),
    )
    .expect("node");
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create node {name}: {e}"),
    }
}

pub async fn set_node_conditions(client: &kube::Client, name: &str, conditions: &[(&str, &str)]) {
    let api: Api<Node> = Api::all(client.clone());
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(kind, status)| json!({"type": kind, "status": status, "lastHeartbeatTime": "2026-11-25T10:00:00Z", "lastTransitionTime": "2026-11-25T10:00:00Z"}))
        .collect();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await
    .unwrap_or_else(|e| panic!("patch node {name}: {e}"));
}

/// A pod bound to `node`, with one container `main` (restartPolicy Always, so crash
/// loops are valid transitions).
pub async fn create_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    node: &str,
    labels: Value,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "restartPolicy": "Always",
                 "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}
    }))
    .expect("pod");
    api.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
}

/// Writes the pod's status subresource.
pub async fn set_status(client: &kube::Client, namespace: &str, name: &str, status: Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap_or_else(|e| panic!("patch status of {name}: {e}"));
}

pub async fn delete_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    grace_seconds: Option<u32>,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: grace_seconds,
        ..DeleteParams::default()
    };
    api.delete(name, &params)
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

fn container(ready: bool, restarts: u32, state: Value, last: Option<Value>) -> Value {
    let mut c = json!({"name": "main", "ready": ready, "restartCount": restarts, "image": "registry.invalid/app:1",
                       "imageID": "", "state": state});
    if let Some(last) = last {
        c["lastState"] = last;
    }
    c
}

fn ready_condition(ready: bool) -> Value {
    json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}])
}

/// Status bodies for each state the tests drive.
/// Every state [`status_for`] writes: each one a policy tells apart.
pub const POD_STATES: [&str; 9] = [
    "pending",
    "running",
    "unready",
    "crashloop",
    "imagepull",
    "oomkilled",
    "evicted",
    "failed",
    "succeeded",
];

pub fn status_for(state: &str) -> Value {
    let running = json!({"running": {"startedAt": "2026-11-25T10:00:00Z"}});
    match state {
        "pending" => {
            json!({"phase": "Pending", "containerStatuses": [container(false, 0, json!({"waiting": {"reason": "ContainerCreating"}}), None)]})
        }
        "running" => {
            json!({"phase": "Running", "conditions": ready_condition(true), "containerStatuses": [container(true, 0, running, None)]})
        }
        "unready" => {
            json!({"phase": "Running", "conditions": ready_condition(false), "containerStatuses": [container(false, 0, running, None)]})
        }
        "crashloop" => {
            json!({"phase": "Running", "conditions": ready_condition(false), "containerStatuses": [container(false, 4,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}),
            Some(json!({"terminated": {"exitCode": 1, "reason": "Error"}})))]})
        }
        "imagepull" => {
            json!({"phase": "Pending", "containerStatuses": [container(false, 0, json!({"waiting": {"reason": "ImagePullBackOff"}}), None)]})
        }
        "oomkilled" => {
            json!({"phase": "Running", "conditions": ready_condition(false), "containerStatuses": [container(false, 1,
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}), None)]})
        }
        "evicted" => json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        "failed" => {
            json!({"phase": "Failed", "containerStatuses": [container(false, 0, json!({"terminated": {"exitCode": 2, "reason": "Error"}}), None)]})
        }
        "succeeded" => {
            json!({"phase": "Succeeded", "containerStatuses": [container(false, 0, json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), None)]})
        }
        other => panic!("no status for {other}"),
    }
}

/// Waits for a snapshot that satisfies `check`, returning it; panics with the last
/// snapshot seen after `timeout`.
pub async fn wait_for_snapshot(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let result = tokio::time::timeout(timeout, async {
        loop {
            let current = rx.borrow_and_update().clone();
            if check(&current) {
                return current;
            }
            if rx.changed().await.is_err() {
                return current;
            }
        }
    })
    .await;
    match result {
        Ok(s) if check(&s) => s,
        _ => panic!(
            "timed out waiting for {what}; last snapshot:\n{}",
            rx.borrow().to_json_pretty()
        ),
    }
}

/// `namespace/name → state` of every pod in a snapshot.
pub fn states(snapshot: &Snapshot) -> Vec<(String, String)> {
    snapshot
        .pods
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.namespace, p.name),
                p.state.name().to_string(),
            )
        })
        .collect()
}

/// The status of a pod whose container `main` is in one phase of a crash loop, as the
/// kubelet writes it: `terminated` (Error) right after a crash, `backoff` (waiting
/// CrashLoopBackOff), or `running` again since `started_ago`. `restarts` is the
/// restart count so far.
pub fn crash_loop_status(phase: &str, restarts: u32, started_ago: Duration) -> Value {
    let last = (restarts > 0)
        .then(|| json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:00:05Z"}}));
    let (ready, state, last) = match phase {
        "terminated" => (
            false,
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:00:05Z"}}),
            last,
        ),
        "backoff" => (
            false,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}),
            Some(
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:00:05Z"}}),
            ),
        ),
        "running" => {
            let started = k8s_openapi::jiff::Timestamp::now()
                - k8s_openapi::jiff::SignedDuration::try_from(started_ago).expect("a duration");
            (
                true,
                json!({"running": {"startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}),
                Some(
                    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:00:05Z"}}),
                ),
            )
        }
        other => panic!("no crash-loop phase {other}"),
    };
    json!({"phase": "Running", "conditions": ready_condition(ready),
           "containerStatuses": [container(ready, restarts, state, last)]})
}

/// Server-side applies the policies ConfigMap `podlight/podlight-policies` with
/// exactly these files (as binaryData), as `kubectl apply --server-side` would.
pub async fn apply_policies(client: &kube::Client, files: &[(&str, &[u8])]) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "podlight");
    let binary: serde_json::Map<String, Value> = files
        .iter()
        .map(|(key, bytes)| {
            let encoded = k8s_openapi::ByteString(bytes.to_vec());
            (
                key.to_string(),
                serde_json::to_value(encoded).expect("base64"),
            )
        })
        .collect();
    let object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "podlight-policies", "namespace": "podlight"},
        "binaryData": binary,
    });
    api.patch(
        "podlight-policies",
        &PatchParams::apply("podlight-tests").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply the policies ConfigMap: {e}"));
}
