//! Cluster scope: the watch of every node and pod against a real kube-apiserver and
//! etcd, the 0.3 contract's `scope` and `nodes` as plugins see them, and plugins
//! built for 0.2 loading unchanged under the 0.3 host.

use podlight_testsupport as support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};
use podlight::cluster::{ConnectOptions, ListCounts, StateWatch, WatchOptions, client};
use podlight::frame::Rgb;
use podlight::policy::Backend;
use podlight::state::{Scope, Snapshot, StateCounts};
use serde_json::json;
use support::cluster::{
    create_node, create_pod, set_node_conditions, set_status, status_for, wait_for_snapshot,
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
