//! The agent's own figures:
//! - host-added latency from a new snapshot to the HID report written (fade off);
//! - policy swap through a ConfigMap-style volume → new colours, cold and cached;
//! - process start → first frame written, RSS with 110 pods, and CPU while nothing
//!   changes (beside kubectl watching the same pods), for the real `podlight run`
//!   binary against a local API server (virtual stick);
//! - side by side, status changes on a real API server → final colour on the
//!   emulated stick: podlight's agent vs. a reproduction of the prototype's loop
//!   (namespace-wide watch filtered on the client, a blocking 1 s morph per LED).
//!
//! Needs the control plane from scripts/build-control-plane.
//! Run: `cargo bench -p podlight --bench agent`

use podlight_testsupport::control_plane;

use podlight_testsupport::atomic_writer;

use podlight_testsupport::process::cpu_ms;
use podlight_testsupport::prototype;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use podlight::agent::{AgentConfig, PolicySource, RunningAgent};
use podlight::cluster::{ConnectOptions, StateWatch, WatchOptions, client};
use podlight::device::sim::emulator::{EmulatorBus, Firmware};
use podlight::device::{Bus, Model, WriterOptions};
use podlight::frame::Rgb;
use podlight::policy::{BUILTIN_PRIORITY, EngineOptions, PolicyEngine};
use podlight::state::{ContainerInfo, ContainerState, NodeInfo, PodInfo, Snapshot};
use serde_json::json;
use tokio::sync::watch;

const SERIAL: &str = "BS000001-3.0";

fn node_with(n: usize, failing: bool) -> Snapshot {
    let pods = (0..n)
        .map(|i| {
            let crash = failing && i == 0;
            PodInfo {
                namespace: "bench".into(),
                name: format!("p{i}"),
                phase: "Running".into(),
                ready: !crash,
                containers: vec![ContainerInfo {
                    name: "c".into(),
                    state: if crash {
                        ContainerState::Waiting {
                            reason: "CrashLoopBackOff".into(),
                        }
                    } else {
                        ContainerState::Running { started_ms: None }
                    },
                    ..ContainerInfo::default()
                }],
                ..PodInfo::default()
            }
        })
        .collect();
    Snapshot::new(
        NodeInfo {
            name: "n".into(),
            ready: true,
            ..NodeInfo::default()
        },
        pods,
        0,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct InProcess {
    bus: EmulatorBus,
    tx: watch::Sender<Arc<Snapshot>>,
    _agent: RunningAgent,
}

async fn in_process(policies: &std::path::Path, cache: &std::path::Path) -> InProcess {
    let (tx, rx) = watch::channel(Arc::new(node_with(110, false)));
    let bus = EmulatorBus::new();
    bus.plug(Firmware::new(Model::Strip, SERIAL));
    let engine = Arc::new(
        PolicyEngine::new(EngineOptions {
            cache_dir: Some(cache.to_path_buf()),
            ..EngineOptions::default()
        })
        .expect("engine"),
    );
    let source = PolicySource {
        dir: Some(policies.to_path_buf()),
        name: "priority".into(),
        api: None,
        trust: Default::default(),
    };
    let agent = AgentConfig {
        writer: WriterOptions {
            fade: Duration::ZERO,
            ..WriterOptions::default()
        },
        ..AgentConfig::new(Arc::new(bus.clone()), rx, engine, source)
    }
    .start()
    .await
    .expect("the agent starts");
    InProcess {
        bus,
        tx,
        _agent: agent,
    }
}

async fn wait_leds(bus: &EmulatorBus, leds: &[Rgb]) -> Instant {
    loop {
        if bus.leds(SERIAL).as_deref() == Some(leds) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    let mut volume = atomic_writer::AtomicDir::new(&policies);
    volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
    let agent = in_process(&policies, &dir.path().join("cache")).await;
    wait_leds(&agent.bus, &[Rgb::new(0, 25, 0); 8]).await;

    // 1. Snapshot published → HID report received by the stick.
    let mut latencies = Vec::new();
    for i in 0..200 {
        let failing = i % 2 == 0;
        let want = if failing {
            Rgb::new(50, 0, 0)
        } else {
            Rgb::new(0, 25, 0)
        };
        tokio::time::sleep(Duration::from_millis(25)).await;
        let sent = Instant::now();
        agent.tx.send_replace(Arc::new(node_with(110, failing)));
        let stick = agent.bus.stick(SERIAL).expect("stick");
        let written = loop {
            let at = stick.lock().ok().and_then(|f| {
                f.received()
                    .last()
                    .map(|(t, r)| (*t, r[3] == want.r && r[2] == want.g))
            });
            if let Some((t, true)) = at
                && t >= sent
            {
                break t;
            }
            tokio::time::sleep(Duration::from_micros(100)).await;
        };
        latencies.push(written - sent);
    }
    latencies.sort();
    println!("== snapshot → HID report written (110 pods, fade off, 200 changes) ==");
    println!(
        "p50 {}  p99 {}  max {}",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("samples"))
    );

    // 2. Policy swap → new colours.
    let testkit = std::fs::read(env!("PODLIGHT_TESTKIT_WASM")).expect("testkit");
    let mut counts = vec![Rgb::OFF; 8];
    counts[0] = Rgb::new(0, 110, 0);
    let start = Instant::now();
    volume.publish(&[("priority.wasm", &testkit)]);
    let cold = wait_leds(&agent.bus, &counts).await - start;
    let start = Instant::now();
    volume.publish(&[("priority.wasm", BUILTIN_PRIORITY)]);
    let hit = wait_leds(&agent.bus, &[Rgb::new(0, 25, 0); 8]).await - start;
    println!("\n== policy swap (AtomicWriter) → new colours on the stick ==");
    println!(
        "cold compile {}   compile-cache hit {}   (both include the 250 ms debounce)",
        ms(cold),
        ms(hit)
    );

    // 3 and 4: the real binary against a local API server.
    let plane = control_plane::ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("bench").await;
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bench-node"}})).expect("node"),
        )
        .await
        .expect("node");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "bench");
    for i in 0..110 {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": format!("app-{i}")},
            "spec": {"nodeName": "bench-node", "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("pod");
    }
    let cache = dir.path().join("run-cache");
    for round in ["cold cache", "warm cache"] {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_podlight"))
            .args([
                "run",
                "--node",
                "bench-node",
                "--device",
                "virtual",
                "--fade-ms",
                "0",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--kubeconfig")
            .arg(&plane.kubeconfig)
            .arg("--policy-dir")
            .arg(&policies)
            .arg("--cache-dir")
            .arg(&cache)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("podlight run");
        let stderr = child.stderr.take().expect("stderr");
        let mut first = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("leds: ") && line.contains("#323200") {
                first = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("VmRSS: ?")
            .to_string();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?")
            .to_string();
        // Idle: nothing changes for 30 s. Beside it, the floor of any watching process:
        // kubectl (client-go) watching the same node's pods, in the same window.
        let idle = if round == "warm cache" {
            let mut kubectl = Command::new(control_plane::bin_dir().join("kubectl"))
                .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
                .args(["get", "pods", "-A", "--watch", "-o", "name"])
                .args(["--field-selector", "spec.nodeName=bench-node"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kubectl watch");
            tokio::time::sleep(Duration::from_secs(3)).await;
            let window = Duration::from_secs(30);
            let (agent_before, kubectl_before) = (cpu_ms(child.id()), cpu_ms(kubectl.id()));
            tokio::time::sleep(window).await;
            let per_minute =
                |before: f64, pid: u32| (cpu_ms(pid) - before) * 60.0 / window.as_secs_f64();
            let figures = (
                per_minute(agent_before, child.id()),
                per_minute(kubectl_before, kubectl.id()),
            );
            let _ = kubectl.kill();
            let _ = kubectl.wait();
            Some(figures)
        } else {
            None
        };
        let _ = child.kill();
        let _ = child.wait();
        println!("\n== podlight run, 110 pods, local API server, {round} ==");
        println!(
            "process start → first frame written: {}",
            first.map_or("never".into(), ms)
        );
        println!("steady state {rss}; peak {hwm}");
        if let Some((agent, kubectl)) = idle {
            println!(
                "idle, nothing changing for 30 s: podlight {agent:.0} ms of CPU per minute; \
                 kubectl watching the same pods {kubectl:.0} ms per minute"
            );
        }
    }

    // 5. Side by side: the same three status changes through podlight and through
    // the prototype's loop, each driving its own emulated stick.
    let changes = [
        ("crashloop", Rgb::new(50, 0, 0)),
        ("running", Rgb::new(0, 25, 0)),
        ("pending", Rgb::new(50, 50, 0)),
    ];
    let node = "side-node";
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": node}})).expect("node"),
        )
        .await
        .expect("node");
    let watched = client(&ConnectOptions {
        kubeconfig: Some(plane.kubeconfig.clone()),
        context: None,
    })
    .await
    .expect("client");
    let watch = StateWatch::start(
        watched.clone(),
        WatchOptions {
            node: node.into(),
            ..WatchOptions::default()
        },
    );
    assert!(watch.wait_synced(Duration::from_secs(20)).await);
    let podlight_bus = EmulatorBus::new();
    podlight_bus.plug(Firmware::new(Model::Strip, SERIAL));
    let engine = Arc::new(PolicyEngine::new(EngineOptions::default()).expect("engine"));
    let source = PolicySource {
        dir: None,
        name: "priority".into(),
        api: None,
        trust: Default::default(),
    };
    let _podlight = AgentConfig {
        cluster: Some(watch.status()),
        ..AgentConfig::new(
            Arc::new(podlight_bus.clone()),
            watch.snapshots(),
            engine,
            source,
        )
    }
    .start()
    .await
    .expect("the agent starts");

    let prototype_bus = EmulatorBus::new();
    prototype_bus.plug(Firmware::new(Model::Strip, SERIAL));
    let prototype = tokio::task::spawn_blocking({
        let bus = prototype_bus.clone();
        let handle = tokio::runtime::Handle::current();
        move || prototype_loop(handle, watched, node, bus)
    });
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "side"},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.invalid/app:1"}]}}))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    wait_leds(&podlight_bus, &[Rgb::new(50, 50, 0); 8]).await;
    wait_leds(&prototype_bus, &[Rgb::new(50, 50, 0); 8]).await;
    let writes = |bus: &EmulatorBus| {
        bus.stick(SERIAL)
            .and_then(|s| s.lock().ok().map(|f| f.received().len()))
            .unwrap_or(0)
    };
    let (podlight_before, prototype_before) = (writes(&podlight_bus), writes(&prototype_bus));
    let mut podlight_total = Duration::ZERO;
    let mut prototype_total = Duration::ZERO;
    println!(
        "\n== side by side: status change on the API server → final colour on the stick (Strip, 8 LEDs) =="
    );
    for (status, colour) in changes {
        let patch = kube::api::Patch::Merge(json!({"status": side_status(status)}));
        pods.patch_status("side", &kube::api::PatchParams::default(), &patch)
            .await
            .expect("patch");
        let accepted = Instant::now();
        let p = wait_leds(&podlight_bus, &[colour; 8]).await - accepted;
        let o = wait_leds(&prototype_bus, &[colour; 8]).await - accepted;
        podlight_total += p;
        prototype_total += o;
        println!(
            "{status:<10} podlight {:>9}   prototype loop {:>10}",
            ms(p),
            ms(o)
        );
    }
    println!(
        "total      podlight {:>9} ({} writes)   prototype loop {:>10} ({} writes)",
        ms(podlight_total),
        writes(&podlight_bus) - podlight_before,
        ms(prototype_total),
        writes(&prototype_bus) - prototype_before
    );
    prototype.abort();
}

fn side_status(state: &str) -> serde_json::Value {
    let (phase, ready, container) = match state {
        "crashloop" => (
            "Running",
            false,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}),
        ),
        "running" => (
            "Running",
            true,
            json!({"running": {"startedAt": "2026-11-25T10:00:00Z"}}),
        ),
        _ => (
            "Pending",
            false,
            json!({"waiting": {"reason": "ContainerCreating", "message": "creating"}}),
        ),
    };
    json!({"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
           "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 1, "image": "i", "imageID": "", "state": container}]})
}

/// The prototype's loop, reproduced: every pod event of the whole cluster, filtered
/// by node on the client; the node colour by its rule (with the crash-loop fix, so
/// both sides aim at the same colours); then, blocking, every LED in turn morphed
/// over 50 steps with a sleep of 1000/51 ms after each.
fn prototype_loop(
    runtime: tokio::runtime::Handle,
    client: kube::Client,
    node: &str,
    bus: EmulatorBus,
) {
    let mut transport = bus.open(SERIAL).expect("opens");
    let mut shown = [Rgb::OFF; 8];
    let mut pods = std::collections::BTreeMap::new();
    let api: Api<Pod> = Api::all(client);
    let mut events = runtime.block_on(async {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed()
    });
    while let Ok(Some(pod)) = runtime.block_on(events.try_next()) {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        pods.insert(
            pod.metadata.name.clone().unwrap_or_default(),
            podlight::cluster::pod_info(&pod),
        );
        let snapshot = Snapshot::new(NodeInfo::default(), pods.values().cloned().collect(), 0);
        let target = podlight::policy::native::priority_frame(
            &snapshot,
            &podlight_priority::Settings::default(),
            8,
        )[0];
        prototype::morph_all(
            transport.as_mut(),
            &mut shown,
            target,
            Duration::from_millis(1000),
        );
    }
}
