//! What reading the API server's watch events costs per object: the full `Pod` and
//! `Node` (the baseline, as the watches read them before) against the slim types the
//! watches read now (`podlight::cluster::{SlimPod, SlimNode}`), over the same lines.
//! Three shapes: a pod as kwok leaves it in the scale benchmark (small spec, kwok's
//! status), a pod of a Deployment as a real cluster has it (probes, env, volumes,
//! tolerations, managed fields of three managers), and a real node (conditions,
//! fifty images, node info).
//!
//! Run: `cargo bench -p podlight --bench watch_decode`

use std::hint::black_box;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::WatchEvent;
use podlight::cluster::{SlimNode, SlimPod, node_info, pod_info};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn managed(manager: &str, operation: &str, fields: Value) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": "v1",
        "time": "2026-12-01T10:00:05Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
}

fn running_status(containers: &[&str]) -> Value {
    json!({
        "phase": "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-12-01T10:00:04Z"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-01T10:00:03Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:09Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-01T10:00:09Z"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T10:00:02Z"}
        ],
        "hostIP": "10.0.3.17", "hostIPs": [{"ip": "10.0.3.17"}],
        "podIP": "10.244.3.41", "podIPs": [{"ip": "10.244.3.41"}],
        "startTime": "2026-12-01T10:00:03Z", "qosClass": "Burstable",
        "containerStatuses": containers.iter().map(|name| json!({
            "name": name, "ready": true, "started": true, "restartCount": 0,
            "image": format!("registry.example/{name}:1.4.2"),
            "imageID": format!("registry.example/{name}@sha256:{}", "0f".repeat(32)),
            "containerID": format!("containerd://{}", "a1".repeat(32)),
            "state": {"running": {"startedAt": "2026-12-01T10:00:08Z"}}
        })).collect::<Vec<_>>()
    })
}

/// A pod in the shape of the scale benchmark's after kwok ran it.
fn kwok_pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("p-{:04}-{:03}", i / 110, i % 110), "namespace": "load",
            "uid": format!("6f1c2d3e-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 100_000 + i),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "managedFields": [
                managed("cluster_scale", "Update", json!({"f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}}, "f:nodeName": {}}})),
                managed("kwok", "Update", json!({"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:phase": {}, "f:podIP": {}, "f:startTime": {}}}))
            ]
        },
        "spec": {"nodeName": format!("node-{:04}", i / 110), "containers": [{"name": "main", "image": "fake",
            "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "imagePullPolicy": "Always"}], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "securityContext": {},
            "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]},
        "status": running_status(&["main"])
    })
}

/// A pod of a Deployment with a sidecar, as a real cluster holds it.
fn deployment_pod(i: usize) -> Value {
    let container = |name: &str| {
        json!({
            "name": name, "image": format!("registry.example/{name}:1.4.2"),
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": (0..12).map(|e| json!({"name": format!("SETTING_{e}"), "value": format!("value-{e}-for-{name}")})).collect::<Vec<_>>(),
            "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true, "runAsNonRoot": true},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
        })
    };
    let mut pod = kwok_pod(i);
    pod["metadata"]["name"] = json!(format!("shop-web-7d9c5b6f4-{i:05}"));
    pod["metadata"]["labels"] = json!({"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9c5b6f4"});
    pod["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "2026-11-30T08:00:00Z", "prometheus.io/scrape": "true", "prometheus.io/port": "8080"});
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-web-7d9c5b6f4", "uid": "9a8b7c6d", "controller": true, "blockOwnerDeletion": true}]);
    pod["metadata"]["managedFields"] = json!([
        managed(
            "kube-controller-manager",
            "Update",
            json!({"f:metadata": {"f:labels": {}, "f:ownerReferences": {}}, "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {"f:env": {}, "f:livenessProbe": {}, "f:readinessProbe": {}, "f:resources": {}}, "k:{\"name\":\"proxy\"}": {"f:env": {}, "f:resources": {}}}, "f:volumes": {}}})
        ),
        managed(
            "kube-scheduler",
            "Update",
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"PodScheduled\"}": {".": {}, "f:status": {}}}}})
        ),
        managed(
            "kubelet",
            "Update",
            json!({"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {}, "f:startTime": {}}})
        )
    ]);
    pod["spec"]["containers"] = json!([container("web"), container("proxy")]);
    pod["spec"]["volumes"] = json!([
        {"name": "config", "configMap": {"name": "shop-web", "defaultMode": 420}},
        {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}
    ]);
    pod["status"] = running_status(&["web", "proxy"]);
    pod
}

/// A node as a real kubelet reports it.
fn real_node(i: usize) -> Value {
    let conditions: Vec<Value> = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        .iter()
        .map(|kind| {
            json!({
                "type": kind, "status": if *kind == "Ready" {"True"} else {"False"},
                "lastHeartbeatTime": "2026-12-01T10:00:00Z", "lastTransitionTime": "2026-11-01T00:00:30Z",
                "reason": format!("Kubelet{kind}"), "message": format!("kubelet reports {kind}")
            })
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": format!("node-{i:04}"), "uid": format!("node-uid-{i}"), "resourceVersion": format!("{}", 200_000 + i),
            "creationTimestamp": "2026-11-01T00:00:00Z",
            "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": format!("node-{i:04}"), "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.large", "topology.kubernetes.io/zone": "eu-west-1a"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "managedFields": [managed("kubelet", "Update", json!({"f:status": {"f:conditions": {}, "f:images": {}, "f:nodeInfo": {}}}))]
        },
        "spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"], "providerID": format!("aws:///eu-west-1a/i-{i:017}")},
        "status": {
            "capacity": {"cpu": "2", "ephemeral-storage": "81106868Ki", "memory": "7935Mi", "pods": "110"},
            "allocatable": {"cpu": "1930m", "ephemeral-storage": "73673207738", "memory": "7133Mi", "pods": "110"},
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "10.0.3.17"}, {"type": "Hostname", "address": format!("node-{i:04}")}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "ec2", "systemUUID": "ec2", "bootID": "b", "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.34.0", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
            "images": (0..50).map(|n| json!({"names": [format!("registry.example/team-{n}/service@sha256:{}", "9e".repeat(32)), format!("registry.example/team-{n}/service:2.{n}.0")], "sizeBytes": 52_428_800 + n})).collect::<Vec<_>>()
        }
    })
}

/// Watch event lines as the API server streams them.
fn lines(objects: impl Iterator<Item = Value>) -> Vec<Vec<u8>> {
    objects
        .map(|object| {
            serde_json::to_vec(&json!({"type": "ADDED", "object": object})).unwrap_or_default()
        })
        .collect()
}

/// Decodes every line as `K`, `rounds` times; µs per object and MB/s.
fn decode<K: DeserializeOwned>(
    lines: &[Vec<u8>],
    rounds: usize,
    read: impl Fn(&K) -> usize,
) -> (f64, f64) {
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut seen = 0;
    for _ in 0..rounds {
        for line in lines {
            match serde_json::from_slice::<WatchEvent<K>>(line) {
                Ok(WatchEvent::Added(object)) => seen += read(black_box(&object)),
                _ => panic!("a line the API server sends must decode"),
            }
        }
    }
    black_box(seen);
    let elapsed = started.elapsed().max(Duration::from_nanos(1));
    let objects = (lines.len() * rounds) as f64;
    (
        elapsed.as_secs_f64() * 1e6 / objects,
        (bytes * rounds) as f64 / elapsed.as_secs_f64() / 1e6,
    )
}

fn main() {
    let count = 2_000;
    let rounds = 5;
    let cases: [(&str, Vec<Vec<u8>>); 3] = [
        ("pod as kwok runs it", lines((0..count).map(kwok_pod))),
        ("pod of a Deployment", lines((0..count).map(deployment_pod))),
        (
            "node as a kubelet reports it",
            lines((0..count).map(real_node)),
        ),
    ];
    println!("| object | bytes each | full: µs each (MB/s) | slim: µs each (MB/s) | saved |");
    println!("|---|---|---|---|---|");
    for (name, lines) in &cases {
        let size = lines.iter().map(Vec::len).sum::<usize>() / lines.len();
        let ((full, full_rate), (slim, slim_rate)) = if name.starts_with("node") {
            let read = |node: &Node| usize::from(node_info("n", Some(node)).ready);
            let read_slim = |node: &SlimNode| usize::from(node_info("n", Some(&node.0)).ready);
            decode::<Node>(lines, 1, read);
            decode::<SlimNode>(lines, 1, read_slim);
            (
                decode::<Node>(lines, rounds, read),
                decode::<SlimNode>(lines, rounds, read_slim),
            )
        } else {
            let read = |pod: &Pod| pod_info(pod).containers.len();
            let read_slim = |pod: &SlimPod| pod_info(&pod.0).containers.len();
            decode::<Pod>(lines, 1, read);
            decode::<SlimPod>(lines, 1, read_slim);
            (
                decode::<Pod>(lines, rounds, read),
                decode::<SlimPod>(lines, rounds, read_slim),
            )
        };
        println!(
            "| {name} | {size} | {full:.2} ({full_rate:.0}) | {slim:.2} ({slim_rate:.0}) | {:.0} % |",
            (1.0 - slim / full) * 100.0
        );
    }
}
