//! API traffic and latency of the cluster watch, against a real API server.
//!
//! - Bytes received by an agent watching its node with the `spec.nodeName` field
//!   selector vs. a namespace-wide watch filtered client-side (the prototype's way),
//!   with 20 nodes x 50 pods, through the same scenario, each through its own
//!   byte-counting proxy.
//! - Time from a status write accepted by the API server to the new snapshot.
//!
//! Needs the control plane from scripts/build-control-plane.
//! Run: `cargo bench -p podlight --bench cluster_watch`

use podlight_testsupport::control_plane;
use podlight_testsupport::counting_proxy::counting_proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use podlight::cluster::{ConnectOptions, StateWatch, WatchOptions, client};
use serde_json::json;

const NODES: usize = 20;
const PODS_PER_NODE: usize = 50;
const NS: &str = "bench";

fn pod_name(node: usize, i: usize) -> String {
    format!("app-{node}-{i}")
}

fn status(phase_running: bool, restarts: u32) -> serde_json::Value {
    let state = if phase_running {
        json!({"running": {"startedAt": "2026-11-25T10:00:00Z"}})
    } else {
        json!({"waiting": {"reason": "CrashLoopBackOff"}})
    };
    json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if phase_running {"True"} else {"False"}}],
                       "containerStatuses": [{"name": "main", "ready": phase_running, "restartCount": restarts, "image": "i", "imageID": "", "state": state}]}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plane = control_plane::ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace(NS).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    let started = Instant::now();
    for node in 0..NODES {
        let creates = (0..PODS_PER_NODE).map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": pod_name(node, i), "labels": {"app": format!("app-{i}")}},
                    "spec": {"nodeName": format!("node-{node}"), "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}
                }))
                .expect("pod");
                pods.create(&PostParams::default(), &pod).await.expect("create");
            }
        });
        futures::future::join_all(creates).await;
    }
    println!(
        "created {} pods on {NODES} nodes in {:.1} s",
        NODES * PODS_PER_NODE,
        started.elapsed().as_secs_f64()
    );

    // Agent A: podlight's watch of node-0 with the field selector.
    let (port_a, bytes_a) = counting_proxy(plane.port).await;
    let client_a = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig_via(port_a, "a.kubeconfig")),
        context: None,
    })
    .await
    .expect("client");
    let watch = StateWatch::start(
        client_a,
        WatchOptions {
            node: "node-0".into(),
            ..WatchOptions::default()
        },
    );
    assert!(watch.wait_synced(Duration::from_secs(60)).await);

    // Agent B: the prototype's namespace-wide watch, filtered on the client.
    let (port_b, bytes_b) = counting_proxy(plane.port).await;
    let client_b = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig_via(port_b, "b.kubeconfig")),
        context: None,
    })
    .await
    .expect("client");
    let seen_b = Arc::new(AtomicU64::new(0));
    let mine_b = Arc::new(AtomicU64::new(0));
    let (seen, mine) = (Arc::clone(&seen_b), Arc::clone(&mine_b));
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client_b, NS);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Ok(Some(pod)) = events.try_next().await {
            seen.fetch_add(1, Ordering::Relaxed);
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-0") {
                mine.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    while seen_b.load(Ordering::Relaxed) < (NODES * PODS_PER_NODE) as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list_a = bytes_a.load(Ordering::Relaxed);
    let list_b = bytes_b.load(Ordering::Relaxed);

    // The same scenario for both: 5 status changes on every node, then settle.
    let mut rx = watch.snapshots();
    for round in 0..5u32 {
        for node in 0..NODES {
            pods.patch_status(
                &pod_name(node, round as usize),
                &PatchParams::default(),
                &Patch::Merge(status(round % 2 == 0, round)),
            )
            .await
            .expect("patch");
        }
    }
    let expected_b = (NODES * PODS_PER_NODE) as u64 + (NODES * 5) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen_b.load(Ordering::Relaxed) < expected_b && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total_a = bytes_a.load(Ordering::Relaxed);
    let total_b = bytes_b.load(Ordering::Relaxed);
    println!(
        "\n== API traffic received by one agent ({NODES} nodes x {PODS_PER_NODE} pods, 100 status changes) =="
    );
    println!("{:<40} | {:>12} | {:>12}", "", "initial list", "total");
    println!(
        "{:<40} | {:>10} KB | {:>10} KB",
        "field selector spec.nodeName (podlight)",
        list_a / 1024,
        total_a / 1024
    );
    println!(
        "{:<40} | {:>10} KB | {:>10} KB",
        "namespace-wide, client filter (prototype)",
        list_b / 1024,
        total_b / 1024
    );
    println!(
        "ratio (prototype / podlight): {:.1}x",
        total_b as f64 / total_a as f64
    );
    println!(
        "(the prototype's agent kept {} of {} objects it received)",
        mine_b.load(Ordering::Relaxed),
        seen_b.load(Ordering::Relaxed)
    );

    // Latency on node-0. The watch event often arrives before the write's own
    // response, so the time from sending the write and from its response both show.
    let mut from_sent = Vec::new();
    let mut from_accepted = Vec::new();
    rx.borrow_and_update();
    for i in 0..100u32 {
        let name = pod_name(0, (i % PODS_PER_NODE as u32) as usize);
        let sent = Instant::now();
        let change = Patch::Merge(status(i % 2 == 1, 100 + i));
        pods.patch_status(&name, &PatchParams::default(), &change)
            .await
            .expect("patch");
        let accepted = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("snapshot in time")
            .expect("watch alive");
        let published = Instant::now();
        from_sent.push(published - sent);
        from_accepted.push(published.saturating_duration_since(accepted));
        rx.borrow_and_update();
    }
    println!("\n== status write → new snapshot published (100 writes) ==");
    for (name, mut latencies) in [
        ("from the write sent", from_sent),
        ("from the write's response", from_accepted),
    ] {
        latencies.sort();
        println!(
            "{name:<26} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    }
}
