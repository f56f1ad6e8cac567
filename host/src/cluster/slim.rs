//! Pods and nodes as the watches read them: what a policy can see of them and what a
//! watch needs to follow them, nothing else. The API server sends every field —
//! managed fields, a pod's whole spec, a node's list of images, every annotation (a
//! `kubectl apply` leaves the whole object in one) — and building all of them was a
//! third of the agent's cost per event and most of its peak memory during the
//! cluster light's first list (110,000 pods). The rest is read past without being
//! built. Pure.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    ContainerStatus, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodCondition, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::runtime::watcher;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::state::SILENCE_ANNOTATION;

/// A `Pod` holding only the fields podlight reads (see [`crate::cluster::pod_info`]),
/// decoded straight from the API server's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SlimPod(pub Pod);

/// A `Node` holding only the fields podlight reads (see [`crate::cluster::node_info`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SlimNode(pub Node);

/// The API's description of a slim type is its full type's: same URLs, same kind.
macro_rules! slim_of {
    ($slim:ty, $full:ty) => {
        impl k8s_openapi::Resource for $slim {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::ListableResource for $slim {
            const LIST_KIND: &'static str = <$full as k8s_openapi::ListableResource>::LIST_KIND;
        }

        impl k8s_openapi::Metadata for $slim {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.0.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.0.metadata
            }
        }

        impl From<$slim> for $full {
            fn from(slim: $slim) -> $full {
                slim.0
            }
        }
    };
}

slim_of!(SlimPod, Pod);
slim_of!(SlimNode, Node);

/// A watch event on slim objects as one on the full type, for the models that read
/// those.
pub fn full_event<S: Into<K>, K>(event: watcher::Event<S>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(object.into()),
        watcher::Event::Delete(object) => watcher::Event::Delete(object.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(object) => watcher::Event::InitApply(object.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

impl<'de> Deserialize<'de> for SlimPod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WirePod::deserialize(deserializer)?;
        let status = wire.status.map(|s| PodStatus {
            phase: s.phase,
            reason: s.reason,
            conditions: s.conditions,
            start_time: s.start_time,
            container_statuses: s.container_statuses,
            init_container_statuses: s.init_container_statuses,
            ..PodStatus::default()
        });
        Ok(SlimPod(Pod {
            metadata: wire.metadata.into(),
            spec: wire.spec.map(|s| PodSpec {
                node_name: s.node_name,
                ..PodSpec::default()
            }),
            status,
        }))
    }
}

impl<'de> Deserialize<'de> for SlimNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireNode::deserialize(deserializer)?;
        Ok(SlimNode(Node {
            metadata: wire.metadata.into(),
            spec: wire.spec.map(|s| NodeSpec {
                unschedulable: s.unschedulable,
                ..NodeSpec::default()
            }),
            status: wire.status.map(|s| NodeStatus {
                conditions: s.conditions,
                ..NodeStatus::default()
            }),
        }))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<WirePodSpec>,
    status: Option<WirePodStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNode {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<WireNodeSpec>,
    status: Option<WireNodeStatus>,
}

/// What a watch and a policy read of an object's metadata.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "silence_annotation")]
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

impl From<WireMeta> for ObjectMeta {
    fn from(meta: WireMeta) -> ObjectMeta {
        ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels,
            annotations: meta.annotations.filter(|kept| !kept.is_empty()),
            owner_references: meta.owner_references,
            creation_timestamp: meta.creation_timestamp,
            deletion_timestamp: meta.deletion_timestamp,
            ..ObjectMeta::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePodSpec {
    node_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePodStatus {
    phase: Option<String>,
    reason: Option<String>,
    conditions: Option<Vec<PodCondition>>,
    start_time: Option<Time>,
    container_statuses: Option<Vec<ContainerStatus>>,
    init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNodeSpec {
    unschedulable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireNodeStatus {
    conditions: Option<Vec<NodeCondition>>,
}

/// Only the annotation podlight reads, its silence: the others (often the largest part
/// of a pod: `kubectl.kubernetes.io/last-applied-configuration`) are read past, not kept.
fn silence_annotation<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Kept;

    impl<'de> Visitor<'de> for Kept {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of annotations")
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(Kept)
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == SILENCE_ANNOTATION {
                    kept.insert(key, map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Some(kept))
        }
    }

    deserializer.deserialize_option(Kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{node_info, pod_info};

    /// A pod as a real API server sends it: managed fields, a full spec, a large
    /// annotation, init and regular containers.
    fn full_pod() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "uid": "0b6c1f7e",
                "resourceVersion": "4711",
                "creationTimestamp": "2026-12-01T10:00:00Z",
                "deletionTimestamp": "2026-12-01T11:00:00Z",
                "labels": {"app": "web"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000),
                    "podlight.dev/silence": r#"{"until": "2026-12-31T00:00:00Z", "reason": "migration", "by": "alice"}"#
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r1", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}}}}]
            },
            "spec": {
                "nodeName": "node-7",
                "containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "b"}],
                    "resources": {"limits": {"memory": "64Mi"}}}],
                "volumes": [{"name": "data", "emptyDir": {}}]
            },
            "status": {
                "phase": "Running",
                "reason": "Evicted",
                "podIP": "10.0.0.7",
                "startTime": "2026-12-01T10:00:05Z",
                "conditions": [{"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "app", "image": "web:1", "imageID": "", "ready": false,
                    "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]
            }
        })
    }

    #[test]
    fn a_slim_pod_shows_a_policy_what_the_full_pod_shows() {
        let json = full_pod();
        let full: Pod = serde_json::from_value(json.clone()).expect("a pod");
        let slim: SlimPod = serde_json::from_value(json).expect("a slim pod");
        assert_eq!(pod_info(&slim.0), pod_info(&full));
        assert!(pod_info(&slim.0).silence.is_some(), "the silence is read");
        assert_eq!(
            slim.0.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("node-7")
        );
        assert_eq!(slim.0.metadata.resource_version.as_deref(), Some("4711"));
        // What is not read is not kept.
        assert!(slim.0.metadata.managed_fields.is_none());
        assert_eq!(
            slim.0
                .metadata
                .annotations
                .as_ref()
                .map(|a| a.keys().cloned().collect::<Vec<_>>()),
            Some(vec![SILENCE_ANNOTATION.to_string()])
        );
        assert!(slim.0.spec.is_some_and(|s| s.containers.is_empty()));
    }

    #[test]
    fn sparse_and_null_fields_read_as_the_full_pod_reads_them() {
        for json in [
            serde_json::json!({"metadata": {"name": "p"}}),
            serde_json::json!({"metadata": {"name": "p", "annotations": null, "labels": null}, "spec": null, "status": null}),
            serde_json::json!({"metadata": {"name": "p", "annotations": {"other": "x"}}, "status": {}}),
        ] {
            let full: Pod = serde_json::from_value(json.clone()).expect("a pod");
            let slim: SlimPod = serde_json::from_value(json.clone()).expect("a slim pod");
            assert_eq!(pod_info(&slim.0), pod_info(&full), "{json}");
        }
        // A wrong type where podlight reads is refused, as for the full pod.
        let wrong = serde_json::json!({"metadata": {"annotations": {"podlight.dev/silence": 5}}});
        assert!(serde_json::from_value::<SlimPod>(wrong.clone()).is_err());
        assert!(serde_json::from_value::<Pod>(wrong).is_err());
    }

    #[test]
    fn a_slim_node_shows_a_policy_what_the_full_node_shows() {
        let json = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "node-7",
                "resourceVersion": "99",
                "labels": {"kubernetes.io/arch": "arm64"},
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "podlight.dev/silence": r#"{"until": "2026-12-31T00:00:00Z", "reason": "kernel upgrade", "by": "alice"}"#
                },
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]
            },
            "spec": {"unschedulable": true, "podCIDR": "10.244.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "MemoryPressure", "status": "True"},
                    {"type": "DiskPressure", "status": "False"}
                ],
                "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368}],
                "nodeInfo": {"architecture": "arm64", "bootID": "", "containerRuntimeVersion": "containerd://1.7",
                    "kernelVersion": "6.1", "kubeProxyVersion": "", "kubeletVersion": "v1.34.0", "machineID": "",
                    "operatingSystem": "linux", "osImage": "Debian", "systemUUID": ""},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}
            }
        });
        let full: Node = serde_json::from_value(json.clone()).expect("a node");
        let slim: SlimNode = serde_json::from_value(json).expect("a slim node");
        assert_eq!(
            node_info("node-7", Some(&slim.0)),
            node_info("node-7", Some(&full))
        );
        assert!(node_info("node-7", Some(&slim.0)).silence.is_some());
        assert!(
            slim.0
                .status
                .is_some_and(|s| s.images.is_none() && s.node_info.is_none())
        );
        assert!(slim.0.metadata.managed_fields.is_none());
        for sparse in [
            serde_json::json!({"metadata": {"name": "n"}}),
            serde_json::json!({"metadata": {"name": "n"}, "spec": null, "status": {"conditions": null}}),
        ] {
            let full: Node = serde_json::from_value(sparse.clone()).expect("a node");
            let slim: SlimNode = serde_json::from_value(sparse.clone()).expect("a slim node");
            assert_eq!(
                node_info("n", Some(&slim.0)),
                node_info("n", Some(&full)),
                "{sparse}"
            );
        }
    }
}
