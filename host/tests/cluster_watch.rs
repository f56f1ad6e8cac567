//! The cluster watch against a real kube-apiserver and etcd.

use podlight_testsupport as support;

use std::time::Duration;

use podlight::cluster::{ConnectOptions, StateWatch, WatchOptions, client};
use serde_json::json;
use support::cluster::{
    POD_STATES, create_node, create_pod, delete_pod, set_node_conditions, set_status, states,
    status_for, wait_for_snapshot,
};
use support::control_plane::ControlPlane;

const WAIT: Duration = Duration::from_secs(20);

fn options(node: &str) -> WatchOptions {
    WatchOptions {
        node: node.into(),
        ..WatchOptions::default()
    }
}

async fn watch(plane: &ControlPlane, options: WatchOptions) -> StateWatch {
    let client = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig.clone()),
        context: None,
    })
    .await
    .expect("client from kubeconfig");
    let watch = StateWatch::start(client, options);
    assert!(watch.wait_synced(WAIT).await, "watch synced");
    watch
}

fn pair(ns: &str, name: &str, state: &str) -> (String, String) {
    (format!("{ns}/{name}"), state.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_this_nodes_pods_in_every_state_then_deletion() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-a").await;
    create_node(&admin, "node-b").await;
    plane.namespace("shop").await;
    plane.namespace("batch").await;
    let states_to_drive = POD_STATES;
    for state in states_to_drive {
        create_pod(&admin, "shop", state, "node-a", json!({"app": state})).await;
    }
    create_pod(&admin, "shop", "elsewhere", "node-b", json!({"app": "x"})).await;
    create_pod(&admin, "batch", "job", "node-a", json!({"app": "job"})).await;

    let watch = watch(&plane, options("node-a")).await;
    let mut rx = watch.snapshots();
    let first = wait_for_snapshot(&mut rx, WAIT, "all node-a pods", |s| s.pods.len() == 10).await;
    assert!(
        first.pods.iter().all(|p| p.name != "elsewhere"),
        "node-b's pod is not on node-a"
    );
    assert!(
        first.pods.iter().all(|p| p.state.name() == "pending"),
        "no status yet: pending"
    );

    for state in states_to_drive {
        set_status(&admin, "shop", state, status_for(state)).await;
    }
    fn expected(state: &'static str) -> &'static str {
        match state {
            "crashloop" | "imagepull" | "oomkilled" | "evicted" | "failed" => "failed",
            other => other,
        }
    }
    let snapshot = wait_for_snapshot(&mut rx, WAIT, "every state", |s| {
        states_to_drive
            .iter()
            .all(|st| states(s).contains(&pair("shop", st, expected(st))))
    })
    .await;
    let reason = |name: &str| {
        snapshot
            .pods
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.reason.clone())
            .unwrap_or_default()
    };
    assert_eq!(reason("crashloop"), "CrashLoopBackOff");
    assert_eq!(reason("imagepull"), "ImagePullBackOff");
    assert_eq!(reason("oomkilled"), "OOMKilled");
    assert_eq!(reason("evicted"), "Evicted");
    assert_eq!(snapshot.counts.failed, 5);
    assert_eq!(snapshot.counts.total, 10);
    assert_eq!(
        snapshot
            .pods
            .iter()
            .find(|p| p.name == "crashloop")
            .map(|p| p.restarts()),
        Some(4)
    );

    // Graceful deletion: the pod stays, terminating, until a kubelet (or a forced
    // delete) confirms.
    delete_pod(&admin, "shop", "running", None).await;
    wait_for_snapshot(&mut rx, WAIT, "deleting", |s| {
        states(s).contains(&pair("shop", "running", "deleting"))
    })
    .await;
    delete_pod(&admin, "shop", "running", Some(0)).await;
    let gone = wait_for_snapshot(&mut rx, WAIT, "gone", |s| {
        s.pods.iter().all(|p| p.name != "running")
    })
    .await;
    assert_eq!(gone.counts.total, 9);

    // The node object: conditions and cordon.
    set_node_conditions(
        &admin,
        "node-a",
        &[("Ready", "True"), ("MemoryPressure", "True")],
    )
    .await;
    let s = wait_for_snapshot(&mut rx, WAIT, "node ready with memory pressure", |s| {
        s.node.ready && s.node.memory_pressure
    })
    .await;
    assert!(!s.node.disk_pressure);
    set_node_conditions(&admin, "node-a", &[("Ready", "False")]).await;
    wait_for_snapshot(&mut rx, WAIT, "node not ready", |s| {
        !s.node.ready && !s.node.memory_pressure
    })
    .await;
    assert_eq!(watch.status().watch_errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_and_label_filters() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-f").await;
    for ns in ["one", "two", "three"] {
        plane.namespace(ns).await;
        create_pod(&admin, ns, "web", "node-f", json!({"tier": "web"})).await;
        create_pod(&admin, ns, "db", "node-f", json!({"tier": "db"})).await;
    }
    let by_namespace = watch(
        &plane,
        WatchOptions {
            namespaces: vec!["one".into(), "three".into()],
            ..options("node-f")
        },
    )
    .await;
    let mut rx = by_namespace.snapshots();
    let s = wait_for_snapshot(&mut rx, WAIT, "two namespaces", |s| s.pods.len() == 4).await;
    assert!(s.pods.iter().all(|p| p.namespace != "two"));

    let by_label = watch(
        &plane,
        WatchOptions {
            label_selector: Some("tier=db".into()),
            ..options("node-f")
        },
    )
    .await;
    let mut rx = by_label.snapshots();
    let s = wait_for_snapshot(&mut rx, WAIT, "db pods", |s| s.pods.len() == 3).await;
    assert!(s.pods.iter().all(|p| p.name == "db"));
    // A pod gaining the label appears; losing it, disappears.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(admin.clone(), "two");
    let relabel =
        |tier: &str| kube::api::Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}}));
    pods.patch("web", &kube::api::PatchParams::default(), &relabel("db"))
        .await
        .expect("relabel");
    wait_for_snapshot(&mut rx, WAIT, "relabelled pod", |s| s.pods.len() == 4).await;
    pods.patch("web", &kube::api::PatchParams::default(), &relabel("web"))
        .await
        .expect("relabel");
    wait_for_snapshot(&mut rx, WAIT, "label removed", |s| s.pods.len() == 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_updates_publish_no_snapshot() {
    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-i").await;
    plane.namespace("quiet").await;
    create_pod(&admin, "quiet", "p", "node-i", json!({"app": "p"})).await;
    let watch = watch(&plane, options("node-i")).await;
    let mut rx = watch.snapshots();
    wait_for_snapshot(&mut rx, WAIT, "the pod", |s| s.pods.len() == 1).await;
    let published = || watch.status().snapshots();
    let before = published();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(admin.clone(), "quiet");
    for i in 0..5 {
        let touch = kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"touched": i.to_string()}}}),
        );
        pods.patch("p", &kube::api::PatchParams::default(), &touch)
            .await
            .expect("annotate");
    }
    set_status(&admin, "quiet", "p", status_for("running")).await;
    wait_for_snapshot(&mut rx, WAIT, "running", |s| s.counts.running == 1).await;
    assert_eq!(
        published(),
        before + 1,
        "five annotation updates published nothing; the status change one snapshot"
    );
    assert!(watch.status().events() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_while_pods_change_leaves_no_ghosts() {
    let mut plane = ControlPlane::start().await;
    let admin = plane.client().await;
    create_node(&admin, "node-r").await;
    plane.namespace("r").await;
    for name in ["keep", "vanish", "change"] {
        create_pod(&admin, "r", name, "node-r", json!({"app": name})).await;
    }
    let watch = watch(&plane, options("node-r")).await;
    let mut rx = watch.snapshots();
    wait_for_snapshot(&mut rx, WAIT, "three pods", |s| s.pods.len() == 3).await;

    // The agent's API server goes away; the cluster changes through another one.
    plane.stop_apiserver();
    {
        let (_second, other) = plane.second_apiserver().await;
        delete_pod(&other, "r", "vanish", Some(0)).await;
        create_pod(
            &other,
            "r",
            "newcomer",
            "node-r",
            json!({"app": "newcomer"}),
        )
        .await;
        set_status(&other, "r", "change", status_for("crashloop")).await;
    }
    // History the watch would resume from is gone: it must relist.
    plane.compact_etcd();
    // While it is down, the watch keeps the last good state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.borrow().pods.len(),
        3,
        "last good state kept while the API server is away"
    );
    plane.start_apiserver().await;

    let truth = {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(admin.clone(), "r");
        let mut names: Vec<String> = pods
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(truth, ["change", "keep", "newcomer"]);
    let s = wait_for_snapshot(
        &mut rx,
        Duration::from_secs(60),
        "the truth after the restart",
        |s| s.pods.iter().map(|p| p.name.clone()).collect::<Vec<_>>() == truth,
    )
    .await;
    assert_eq!(
        s.pods
            .iter()
            .find(|p| p.name == "change")
            .map(|p| p.state.name()),
        Some("failed")
    );
    assert!(
        watch.status().watch_errors() > 0,
        "the outage was seen and retried"
    );
}
