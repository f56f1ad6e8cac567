//! Cluster scope: the watch of every node and pod against a real kube-apiserver and
//! etcd, the 0.3 contract's `scope` and `nodes` as plugins see them, and plugins
//! built for 0.2 loading unchanged under the 0.3 host.

use podlight_testsupport as support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use podlight::cluster::{
    ConnectOptions, ListCounts, StateWatch, WatchOptions, client, pod_from_envelope, pod_info,
};
use podlight::frame::Rgb;
use podlight::policy::Backend;
use podlight::state::{Scope, Snapshot, StateCounts};
use serde_json::json;
use support::cluster::{
    POD_STATES, create_node, create_pod, set_node_conditions, set_status, status_for,
    wait_for_snapshot,
};
use support::control_plane::ControlPlane;
use support::{PRIORITY_0_2_WASM, PRIORITY_0_3_WASM, engine, sample_snapshots};

const WAIT: Duration = Duration::from_secs(20);

fn counts_of<'a>(snapshot: &'a Snapshot, node: &str) -> Option<&'a StateCounts> {
    snapshot
        .nodes
        .iter()
        .find(|n| n.node.name == node)
        .map(|n| &n.counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_watch_counts_every_node_and_lists_only_pods_in_trouble() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("web").await;
    plane.namespace("batch").await;
    for node in ["node-b", "node-a"] {
        create_node(&admin, node).await;
        set_node_conditions(&admin, node, &[("Ready", "True")]).await;
    }
    for (ns, name, node, state) in [
        ("web", "front", "node-a", "running"),
        ("web", "back", "node-a", "running"),
        ("web", "cache", "node-b", "running"),
        ("batch", "job", "node-b", "succeeded"),
        ("batch", "broken", "node-b", "crashloop"),
    ] {
        create_pod(&admin, ns, name, node, json!({"app": name})).await;
        set_status(&admin, ns, name, status_for(state)).await;
    }
    let client = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig.clone()),
        context: None,
    })
    .await
    .expect("client");
    let watch = StateWatch::start_cluster(client.clone(), WatchOptions::default());
    assert!(watch.wait_synced(WAIT).await, "synced");
    assert_eq!(
        watch.status().lists(),
        ListCounts {
            streamed: 2,
            paged: 0
        },
        "pods and nodes listed by streaming (WatchList is on by default)"
    );
    let mut rx = watch.snapshots();
    let snapshot = wait_for_snapshot(&mut rx, WAIT, "five pods on two nodes", |s| {
        s.counts.total == 5
    })
    .await;
    assert_eq!(snapshot.scope, Scope::Cluster);
    let names: Vec<&str> = snapshot
        .nodes
        .iter()
        .map(|n| n.node.name.as_str())
        .collect();
    assert_eq!(names, ["node-a", "node-b"], "ordered by name");
    assert_eq!(
        counts_of(&snapshot, "node-a").map(|c| (c.running, c.total)),
        Some((2, 2))
    );
    let b = counts_of(&snapshot, "node-b").copied().unwrap_or_default();
    assert_eq!((b.running, b.succeeded, b.failed, b.total), (1, 1, 1, 3));
    assert_eq!(snapshot.node.name, "cluster");
    assert!(snapshot.node.ready, "every node ready");
    let listed: Vec<&str> = snapshot.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(listed, ["broken"], "only the pod in trouble is listed");

    // A node going NotReady makes the cluster not ready; a deleted node leaves,
    // and its pods are in no node's counts.
    set_node_conditions(&admin, "node-b", &[("Ready", "False")]).await;
    wait_for_snapshot(&mut rx, WAIT, "node-b NotReady", |s| {
        !s.node.ready
            && s.nodes
                .iter()
                .any(|n| n.node.name == "node-b" && !n.node.ready)
    })
    .await;
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes
        .delete("node-b", &DeleteParams::default())
        .await
        .expect("delete node-b");
    let gone = wait_for_snapshot(&mut rx, WAIT, "node-b gone", |s| s.nodes.len() == 1).await;
    assert_eq!(gone.counts.total, 2, "node-a's pods only");
    assert!(gone.node.ready);

    // A label selector (and namespaces) narrow the pods, not the nodes.
    let selected = StateWatch::start_cluster(
        client,
        WatchOptions {
            namespaces: vec!["web".into()],
            label_selector: Some("app=front".into()),
            ..WatchOptions::default()
        },
    );
    assert!(selected.wait_synced(WAIT).await, "synced");
    let mut rx = selected.snapshots();
    let narrowed = wait_for_snapshot(&mut rx, WAIT, "one pod", |s| s.counts.total == 1).await;
    assert_eq!(narrowed.nodes.len(), 1);

    // An API server with streaming lists off refuses them: the watch lists page by
    // page and shows the same cluster.
    let (_paged_server, _) = plane
        .second_apiserver_with(&["--feature-gates=WatchList=false"])
        .await;
    let paged_client = podlight::cluster::client(&ConnectOptions {
        kubeconfig: Some(plane.dir().join("second.kubeconfig")),
        context: None,
    })
    .await
    .expect("client");
    let paged = StateWatch::start_cluster(paged_client, WatchOptions::default());
    assert!(paged.wait_synced(WAIT).await, "synced through paged lists");
    assert_eq!(
        paged.status().lists(),
        ListCounts {
            streamed: 0,
            paged: 2
        }
    );
    let mut rx = paged.snapshots();
    let same = wait_for_snapshot(&mut rx, WAIT, "node-a's two pods", |s| s.counts.total == 2).await;
    assert!(same.shows_the_same(&gone), "{same:?}\n{gone:?}");
}

/// Every state a policy tells apart, and everything else it reads of a pod: labels,
/// a silence, an owner, init containers, a deletion under way, an annotation it
/// does not read. Returns how many pods there are.
async fn varied_pods(admin: &kube::Client, namespace: &str) -> u32 {
    for (i, state) in POD_STATES.iter().enumerate() {
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        create_pod(admin, namespace, state, node, json!({"app": state})).await;
        set_status(admin, namespace, state, status_for(state)).await;
    }
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    let owned: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "owned",
            "labels": {"app": "owned", "tier": "back"},
            "finalizers": ["podlight.dev/test"],
            "annotations": {
                "podlight.dev/silence": r#"{"until": "2099-01-01T00:00:00Z", "reason": "migration", "by": "alice"}"#,
                "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000)
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "c1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r1", "controller": true}
            ]
        },
        "spec": {
            "nodeName": "node-b",
            "initContainers": [{"name": "init", "image": "registry.invalid/init:1"}],
            "containers": [{"name": "main", "image": "registry.invalid/app:1"}]
        }
    }))
    .expect("a pod");
    pods.create(&PostParams::default(), &owned)
        .await
        .expect("create owned");
    set_status(
        admin,
        namespace,
        "owned",
        json!({
            "phase": "Running",
            "startTime": "2026-11-25T10:00:00Z",
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [{"name": "init", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            "containerStatuses": [{"name": "main", "image": "m", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"running": {"startedAt": "2026-11-25T10:05:00Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]
        }),
    )
    .await;
    // Kept by its finalizer: deleting, with a deletion time.
    pods.delete("owned", &DeleteParams::default())
        .await
        .expect("delete owned");
    POD_STATES.len() as u32 + 1
}

/// The paged watch's latest snapshot, once the streamed watch shows the same.
async fn shown_alike(
    streamed: &mut tokio::sync::watch::Receiver<Arc<Snapshot>>,
    paged: &mut tokio::sync::watch::Receiver<Arc<Snapshot>>,
    what: &str,
) -> Arc<Snapshot> {
    let want = paged.borrow_and_update().clone();
    wait_for_snapshot(streamed, WAIT, what, |s| s.shows_the_same(&want)).await
}

/// A pod as the API server sends it alone in protobuf.
async fn protobuf_pod(admin: &kube::Client, namespace: &str, name: &str) -> bytes::Bytes {
    use futures::AsyncReadExt;
    let request = http::Request::get(format!("/api/v1/namespaces/{namespace}/pods/{name}"))
        .header(http::header::ACCEPT, "application/vnd.kubernetes.protobuf")
        .body(Vec::new())
        .expect("request");
    let body = admin.request_stream(request).await.expect("the pod");
    let mut bytes = Vec::new();
    std::pin::pin!(body)
        .read_to_end(&mut bytes)
        .await
        .expect("read");
    bytes.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_read_in_protobuf_show_a_policy_what_they_show_in_json() {
    let mut plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("web").await;
    for node in ["node-a", "node-b"] {
        create_node(&admin, node).await;
        set_node_conditions(&admin, node, &[("Ready", "True")]).await;
    }
    let total = varied_pods(&admin, "web").await;

    // Each pod read alone, both ways.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "web");
    let listed = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), total as usize);
    for json in &listed.items {
        let name = json.metadata.name.clone().unwrap_or_default();
        let protobuf = pod_from_envelope(protobuf_pod(&admin, "web", &name).await)
            .unwrap_or_else(|e| panic!("{name} reads: {e}"));
        assert_eq!(pod_info(&protobuf.0), pod_info(json), "{name}");
        assert_eq!(
            protobuf.0.spec.and_then(|s| s.node_name),
            json.spec.as_ref().and_then(|s| s.node_name.clone()),
            "{name}"
        );
        assert_eq!(
            protobuf.0.metadata.resource_version, json.metadata.resource_version,
            "{name}"
        );
    }
    let owned = pod_info(&pods.get("owned").await.expect("owned"));
    assert!(owned.silence.is_some() && owned.deleting && owned.owner_kind == "ReplicaSet");

    // The whole cluster: the streamed watch (protobuf) and the paged one (JSON, from
    // an API server with WatchList off, on the same etcd) show the same.
    let client_of = |path: std::path::PathBuf| async move {
        client(&ConnectOptions {
            kubeconfig: Some(path),
            context: None,
        })
        .await
        .expect("client")
    };
    let streamed = StateWatch::start_cluster(
        client_of(plane.kubeconfig.clone()).await,
        WatchOptions::default(),
    );
    let (_paged_server, other) = plane
        .second_apiserver_with(&["--feature-gates=WatchList=false"])
        .await;
    let paged = StateWatch::start_cluster(
        client_of(plane.dir().join("second.kubeconfig")).await,
        WatchOptions::default(),
    );
    assert!(streamed.wait_synced(WAIT).await && paged.wait_synced(WAIT).await);
    assert_eq!(streamed.status().lists().streamed, 2);
    assert_eq!(paged.status().lists().paged, 2);
    let (mut streamed_rx, mut paged_rx) = (streamed.snapshots(), paged.snapshots());
    wait_for_snapshot(&mut paged_rx, WAIT, "every pod, paged", |s| {
        s.counts.total == total
    })
    .await;
    let first = shown_alike(&mut streamed_rx, &mut paged_rx, "every pod").await;
    assert_eq!(first.counts.total, total);
    assert!(!first.pods.is_empty(), "pods in trouble listed");

    // Changes as the watch sends them: a status, a deletion.
    set_status(&admin, "web", "running", status_for("crashloop")).await;
    pods.delete("succeeded", &DeleteParams::default())
        .await
        .expect("delete");
    wait_for_snapshot(&mut paged_rx, WAIT, "the changes, paged", |s| {
        s.counts.total == total - 1 && s.counts.failed == first.counts.failed + 1
    })
    .await;
    shown_alike(&mut streamed_rx, &mut paged_rx, "the changes").await;

    // The API server goes away; the cluster changes through the other one; its
    // history is compacted: the watch lists again and shows the cluster as it is.
    plane.stop_apiserver();
    set_status(&other, "web", "pending", status_for("running")).await;
    Api::<Pod>::namespaced(other.clone(), "web")
        .delete("failed", &DeleteParams::default())
        .await
        .expect("delete");
    plane.compact_etcd();
    let changed = wait_for_snapshot(&mut paged_rx, WAIT, "the changes while away", |s| {
        s.counts.total == total - 2
    })
    .await;
    plane.start_apiserver().await;
    let again = wait_for_snapshot(&mut streamed_rx, Duration::from_secs(60), "relisted", |s| {
        s.shows_the_same(&changed)
    })
    .await;
    assert_eq!(again.counts.total, total - 2);
    assert!(streamed.status().lists().streamed > 2, "listed again");
}

/// A cluster snapshot file: nodes with their counts, and the pods in trouble.
fn cluster_file(nodes: usize, failing_node: usize) -> Arc<Snapshot> {
    let nodes: Vec<serde_json::Value> = (0..nodes)
        .map(|i| {
            let counts = if i == failing_node {
                json!({"running": 3, "failed": 1})
            } else {
                json!({"running": 4})
            };
            json!({"name": format!("node-{i:02}"), "ready": true, "counts": counts})
        })
        .collect();
    let text = json!({"scope": "cluster", "nowMs": 1_000_000, "nodes": nodes}).to_string();
    Arc::new(Snapshot::from_json(&text).expect("a cluster snapshot reads"))
}

#[test]
fn the_builtin_policy_gives_one_led_per_node_and_an_overflow_marker() {
    let engine = engine(Backend::Cranelift);
    let policy = Arc::new(engine.builtin().expect("builtin"));
    let mut instance = policy.instantiate(None).expect("starts");
    let green = Rgb::new(0, 25, 0);
    let red = Rgb::new(50, 0, 0);

    let fits = instance
        .evaluate(&cluster_file(3, 1), 4)
        .expect("evaluates");
    assert_eq!(fits.leds, [green, red, green, Rgb::OFF]);
    assert_eq!(fits.again_after_ms, None);
    assert_eq!(
        cluster_file(3, 1).counts.total,
        12,
        "totals read from the nodes"
    );

    // Ten nodes on four LEDs: three nodes, then the worst of the other seven.
    let overflow = cluster_file(10, 8);
    let lit = instance.evaluate_at(&overflow, 4, 1_000_000).expect("lit");
    assert_eq!(lit.leds, [green, green, green, red]);
    assert_eq!(lit.again_after_ms, Some(500));
    let dark = instance.evaluate_at(&overflow, 4, 1_000_600).expect("dark");
    assert_eq!(dark.leds, [green, green, green, Rgb::OFF]);
    assert_eq!(dark.again_after_ms, Some(400));

    // A JSON round trip keeps a cluster snapshot whole.
    let again = Snapshot::from_json(&overflow.to_json_pretty()).expect("reads back");
    assert_eq!(&again, overflow.as_ref());
}

#[test]
fn plugins_built_for_0_2_and_0_3_load_unchanged_and_agree_with_the_current_build() {
    for (plugin, version) in [(PRIORITY_0_2_WASM, "0.2.0"), (PRIORITY_0_3_WASM, "0.3.0")] {
        for backend in [Backend::Cranelift, Backend::Pulley] {
            let engine = engine(backend);
            let old = Arc::new(
                engine
                    .load_file(Path::new(plugin))
                    .unwrap_or_else(|e| panic!("a {version} plugin loads: {e}")),
            );
            assert_eq!(old.info().contract_version, version);
            assert!(
                old.info()
                    .imports
                    .iter()
                    .any(|i| i == &format!("podlight:policy/snapshot@{version}")),
                "{:?}",
                old.info().imports
            );
            let current = Arc::new(engine.builtin().expect("builtin"));
            assert_eq!(
                current.info().contract_version,
                podlight::policy::CONTRACT_VERSION
            );
            let mut old_instance = old.instantiate(None).expect("starts");
            let mut current_instance = current.instantiate(None).expect("starts");
            for (name, snapshot) in sample_snapshots() {
                for leds in [1, 8] {
                    let before = old_instance
                        .evaluate(&snapshot, leds)
                        .unwrap_or_else(|e| panic!("{version} evaluates: {e}"));
                    let now = current_instance
                        .evaluate(&snapshot, leds)
                        .expect("the current build evaluates");
                    assert_eq!(
                        before.leds, now.leds,
                        "{name} on {leds} LEDs ({backend:?}, {version})"
                    );
                    assert!(before.reasons.is_empty(), "{version} gives no reasons");
                    assert!(!now.reasons.is_empty(), "0.4 says why: {name}");
                }
            }
            // Given a cluster snapshot, a 0.2 plugin sees the cluster as one node (the
            // counts summed) and still runs; a 0.3 plugin shows every node.
            let frame = old_instance
                .evaluate(&cluster_file(10, 3), 8)
                .unwrap_or_else(|e| panic!("a {version} plugin in cluster scope: {e}"));
            if version == "0.2.0" {
                assert_eq!(
                    frame.leds,
                    vec![Rgb::new(50, 0, 0); 8],
                    "the summed counts hold a failure"
                );
            } else {
                let now = current_instance
                    .evaluate(&cluster_file(10, 3), 8)
                    .expect("current in cluster scope");
                assert_eq!(frame.leds, now.leds, "0.3 and 0.4 agree in cluster scope");
            }
        }
    }
}
