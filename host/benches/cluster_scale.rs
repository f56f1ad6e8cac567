//! The cluster at scale: 1,000 simulated nodes × 110 pods on a real API server, with
//! pod status churn at a steady rate. kwok (sigs.k8s.io/kwok, built from the Go
//! module proxy by `scripts/build-control-plane kwok`) keeps the fake nodes Ready and moves
//! every pod to Running, as kubelets would; the benchmark writes the churn itself.
//!
//! (a) One node-scope agent (`podlight run`, a process) for a node with 110 pods
//!     while the cluster holds 110,000: RSS, CPU and the bytes it receives.
//! (b) The API server's memory and CPU with 1, 10 and 100 node-scope watches
//!     (podlight's own watch, `StateWatch::start`, each for its own node — in this
//!     one process: an agent's watch without its 20 MB of policy engine each),
//!     against the same number of seed-style namespace-wide watches filtered on the
//!     client (the prototype's way).
//! (c) The cluster-scope agent (`podlight run --scope cluster`, a process): RSS,
//!     CPU, evaluate time, and the time from a pod status change to the new frame.
//!
//! `PODLIGHT_BASELINE_BIN=path` runs (a) and (c) with that build of podlight too,
//! first, in the same cluster and the same run (`scripts/bench-scale` builds the
//! commit before this benchmark's changes for it); `PODLIGHT_SCALE_CASES` picks
//! cases ("a,b,c").
//!
//! Sizes: PODLIGHT_SCALE_NODES (1000), PODLIGHT_SCALE_PODS (110 per node),
//! PODLIGHT_SCALE_CHURN (status writes per second, 20), PODLIGHT_SCALE_TROUBLED (pods
//! the churn keeps in a crash loop at once, 100; the cluster snapshot lists them), PODLIGHT_SCALE_WINDOW
//! (seconds measured per case, 30), PODLIGHT_SCALE_SEED ("1,10": seed-style counts;
//! each lists every pod in the cluster, so 100 of them at full size would send
//! about 100 × the cluster's pods).
//! Run: `cargo bench -p podlight --bench cluster_scale`

use podlight_testsupport as support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use podlight::cluster::{ConnectOptions, StateWatch, WatchOptions, client};
use serde_json::json;
use support::cluster::status_for;
use support::control_plane::{ControlPlane, bin_dir, binary};
use support::counting_proxy::counting_proxy;
use support::http_client::{free_port, get};

const NS: &str = "load";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

fn pod_name(node: usize, j: usize) -> String {
    format!("p-{node:04}-{j:03}")
}

/// Resident set size and CPU time (user + system) of a process.
fn usage(pid: u32) -> (f64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (rss_kb / 1024.0, Duration::from_millis(ticks * 1000 / hz))
}

/// Pods in the namespace with this field selector (`status.phase=Running`, …),
/// counted page by page (the API gives no remaining count for a selected list).
async fn count(pods: &Api<Pod>, fields: &str) -> u64 {
    let mut counted = 0;
    let mut params = ListParams::default().fields(fields).limit(10_000);
    loop {
        let page = pods.list_metadata(&params).await.expect("list");
        counted += page.items.len() as u64;
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return counted,
        }
    }
}

/// Writes pod statuses at `rate` per second on nodes other than the ones the cases
/// watch closely (from node 1): every other write puts the next pod into a crash loop,
/// the others bring back the one that went `troubled` pods before, so about that
/// many pods are failing at any time, as in a cluster with some trouble.
fn churn(
    client: kube::Client,
    nodes: usize,
    per_node: usize,
    rate: usize,
    troubled: usize,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
) {
    // The m-th pod written: a spread of nodes.
    let pod_of = move |m: usize| {
        let node = 1 + (m * 7919) % (nodes - 1).max(1);
        pod_name(node, (m / nodes) % per_node)
    };
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, NS);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        let mut n: usize = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n = n.wrapping_add(1);
            let (name, state) = if n.is_multiple_of(2) {
                (pod_of(n / 2), "crashloop")
            } else if n / 2 >= troubled {
                (pod_of(n / 2 - troubled), "running")
            } else {
                continue;
            };
            let body = json!({"status": status_for(state)});
            if pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
                .await
                .is_ok()
            {
                writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// `podlight run` (this `binary`) with a virtual stick, its stderr lines as they come.
fn spawn_agent(
    binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    port: u16,
    dir: &std::path::Path,
    extra: &[&str],
    node: &str,
) -> (Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new(binary)
        // The cluster watch says how long each snapshot took to build.
        .env("RUST_LOG", "info,podlight::cluster=debug")
        .args([
            "run",
            "--device",
            "virtual",
            "--fade-ms",
            "0",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--policy-dir")
        .arg(dir)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("NODE_NAME", node)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("podlight run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    (child, rx)
}

fn wait_ready(port: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    while get(port, "/readyz").map(|r| r.0) != Some(200) {
        assert!(started.elapsed() < limit, "the agent never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// How long the API server takes to send a new watch of every pod its initial
/// events, up to the bookmark that ends them, in the encoding `accept` asks for; and
/// the bytes it sent.
async fn initial_list_alone(
    client: &kube::Client,
    accept: &str,
) -> Result<(Duration, u64), String> {
    use futures::AsyncReadExt;
    const END: &[u8] = b"k8s.io/initial-events-end";
    let request = http::Request::get(
        "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=600",
    )
    .header(http::header::ACCEPT, accept)
    .body(Vec::new())
    .expect("request");
    let started = Instant::now();
    let body = client
        .request_stream(request)
        .await
        .map_err(|e| format!("the watch was refused: {e}"))?;
    let mut body = std::pin::pin!(body);
    let mut bytes = 0u64;
    // The end marker may straddle two reads: keep the last bytes (they also say why
    // a watch ended early).
    let mut window: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = body
            .read(&mut buffer)
            .await
            .map_err(|e| format!("reading the watch failed after {bytes} bytes: {e}"))?;
        if read == 0 {
            let last = String::from_utf8_lossy(&window).replace(|c: char| c.is_control(), " ");
            return Err(format!(
                "the watch ended after {bytes} bytes, before its initial events did (last bytes: {last})"
            ));
        }
        window.extend_from_slice(&buffer[..read]);
        bytes += read as u64;
        if window.windows(END.len()).any(|w| w == END) {
            return Ok((started.elapsed(), bytes));
        }
        window.drain(..window.len().saturating_sub(256));
    }
}

/// Sum and count of a histogram in the agent's /metrics.
fn histogram(port: u16, name: &str) -> (f64, f64) {
    let (_, text) = get(port, "/metrics").unwrap_or_default();
    let value = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes = env_or("PODLIGHT_SCALE_NODES", 1000);
    let per_node = env_or("PODLIGHT_SCALE_PODS", 110);
    let rate = env_or("PODLIGHT_SCALE_CHURN", 20);
    let troubled = env_or("PODLIGHT_SCALE_TROUBLED", 100);
    let window = Duration::from_secs(env_or("PODLIGHT_SCALE_WINDOW", 30) as u64);
    let seeds: Vec<usize> = std::env::var("PODLIGHT_SCALE_SEED")
        .unwrap_or_else(|_| "1,10".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let total = nodes * per_node;
    let cases = std::env::var("PODLIGHT_SCALE_CASES").unwrap_or_else(|_| "a,b,c".into());
    let mut builds = vec![(
        "current".to_string(),
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_podlight")),
    )];
    if let Some(baseline) = std::env::var_os("PODLIGHT_BASELINE_BIN") {
        builds.insert(0, ("baseline".to_string(), baseline.into()));
    }
    println!(
        "cluster_scale: {nodes} nodes × {per_node} pods = {total} pods, churn {rate}/s keeping {troubled} pods failing, window {} s",
        window.as_secs()
    );

    let plane = ControlPlane::start().await;
    let admin = plane.client().await;
    plane.namespace("kube-node-lease").await;
    plane.namespace(NS).await;
    let apiserver = plane.apiserver_pid().expect("API server running");

    // kwok manages the nodes annotated as fake: Ready with heartbeats, pods Running.
    let kwok_log_path = std::env::temp_dir().join("podlight-cluster-scale-kwok.log");
    let kwok_log = std::fs::File::create(&kwok_log_path).expect("log");
    let stages = std::fs::read_dir(bin_dir())
        .expect("the tools' directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kwok-stages-"))
        })
        .expect("kwok's stages (`scripts/build-control-plane kwok` writes them)");
    let mut kwok = Command::new(binary("kwok"))
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .arg("--config")
        .arg(&stages)
        .args([
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.0.0.0/8",
            "--node-ip=10.255.255.1",
        ])
        .stdout(Stdio::null())
        .stderr(kwok_log)
        .spawn()
        .expect("kwok (`scripts/build-control-plane kwok` builds it)");

    let started = Instant::now();
    let node_api: Api<Node> = Api::all(admin.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move {
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": node_name(i), "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": {"type": "kwok"}},
                }))
                .expect("node");
                api.create(&PostParams::default(), &node).await.expect("create node");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    futures::stream::iter((0..nodes).flat_map(|i| (0..per_node).map(move |j| (i, j))))
        .map(|(i, j)| {
            let api = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": pod_name(i, j), "labels": {"app": format!("app-{}", j % 10)}},
                    "spec": {"nodeName": node_name(i), "containers": [{"name": "main", "image": "fake"}]},
                }))
                .expect("pod");
                for _ in 0..5 {
                    if api.create(&PostParams::default(), &pod).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                panic!("cannot create pod {}", pod_name(i, j));
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let running = count(&pods, "status.phase=Running").await;
        if running as usize >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kwok ran only {running} of {total} pods; see {}",
            kwok_log_path.display()
        );
        println!(
            "  {running} of {total} pods Running after {:.0} s",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    println!(
        "setup: {nodes} nodes and {total} pods created in {:.0} s, all Running (kwok) after {:.0} s; API server {:.0} MiB",
        created.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        usage(apiserver).0
    );

    // The bulk writes leave the API server busy for a while (its watch cache, kwok
    // catching up): the cases start once it has settled.
    let settle_started = Instant::now();
    loop {
        let (_, before) = usage(apiserver);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (_, after) = usage(apiserver);
        let busy = (after - before).as_secs_f64() * 10.0;
        if busy < 30.0 || settle_started.elapsed() > Duration::from_secs(300) {
            println!(
                "settled after {:.0} s (API server at {busy:.0} % of a core over 10 s)",
                settle_started.elapsed().as_secs_f64()
            );
            break;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    churn(
        admin.clone(),
        nodes,
        per_node,
        rate,
        troubled,
        Arc::clone(&stop),
        Arc::clone(&writes),
    );
    let dir = tempfile::tempdir().expect("temp dir");

    // (a) One node-scope agent for node-0000, through a byte-counting proxy.
    for (build, binary) in builds.iter().filter(|_| cases.contains('a')) {
        let (proxy, received) = counting_proxy(plane.port).await;
        let kubeconfig = plane.kubeconfig_via(proxy, "agent-a.kubeconfig");
        let port = free_port();
        let (mut agent, _lines) =
            spawn_agent(binary, &kubeconfig, port, dir.path(), &[], &node_name(0));
        let ready = wait_ready(port, Duration::from_secs(300));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_, cpu_before) = usage(agent.id());
        let bytes_before = received.load(Ordering::Relaxed);
        let writes_before = writes.load(Ordering::Relaxed);
        tokio::time::sleep(window).await;
        let (rss, cpu_after) = usage(agent.id());
        let bytes = received.load(Ordering::Relaxed) - bytes_before;
        let cluster_writes = writes.load(Ordering::Relaxed) - writes_before;
        println!(
            "(a) {build}: node agent, {per_node} pods of {total}: ready in {:.1} s ({:.2} MiB received to sync), RSS {rss:.1} MiB, CPU {:.2} % of a core, {:.0} bytes/s received while the cluster wrote {:.1} statuses/s",
            ready.as_secs_f64(),
            mib(bytes_before),
            (cpu_after - cpu_before).as_secs_f64() * 100.0 / window.as_secs_f64(),
            bytes as f64 / window.as_secs_f64(),
            cluster_writes as f64 / window.as_secs_f64(),
        );
        let _ = agent.kill();
        let _ = agent.wait();
    }

    // (b) The API server with N node-scope watches, then N seed-style ones.
    if cases.contains('b') {
        let (proxy, received) = counting_proxy(plane.port).await;
        let watch_client = client(&ConnectOptions {
            kubeconfig: Some(plane.kubeconfig_via(proxy, "watches.kubeconfig")),
            context: None,
        })
        .await
        .expect("client");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (idle_rss, idle_before) = usage(apiserver);
        tokio::time::sleep(window).await;
        let (_, idle_after) = usage(apiserver);
        println!(
            "(b) API server, no watches: RSS {idle_rss:.0} MiB, CPU {:.1} % of a core",
            (idle_after - idle_before).as_secs_f64() * 100.0 / window.as_secs_f64()
        );
        for count_of in [1usize, 10, 100] {
            for seed in [false, true] {
                if seed && !seeds.contains(&count_of) {
                    continue;
                }
                let sync_started = Instant::now();
                let bytes_start = received.load(Ordering::Relaxed);
                let mut keep = Vec::new();
                let synced = Arc::new(AtomicU64::new(0));
                for k in 0..count_of {
                    let node = node_name(k * nodes.max(1) / count_of.max(1));
                    if seed {
                        // The prototype: every pod in the namespace, filtered here.
                        let api: Api<Pod> = Api::namespaced(watch_client.clone(), NS);
                        let synced = Arc::clone(&synced);
                        keep.push(tokio::spawn(async move {
                            let mine = AtomicU64::new(0);
                            let mut stream = watcher(api, watcher::Config::default())
                                .default_backoff()
                                .boxed();
                            while let Ok(Some(event)) = stream.try_next().await {
                                match event {
                                    watcher::Event::InitDone => {
                                        synced.fetch_add(1, Ordering::Relaxed);
                                    }
                                    watcher::Event::Apply(p) | watcher::Event::InitApply(p)
                                        if p.spec.as_ref().and_then(|s| s.node_name.as_deref())
                                            == Some(node.as_str()) =>
                                    {
                                        mine.fetch_add(1, Ordering::Relaxed);
                                    }
                                    _ => {}
                                }
                            }
                        }));
                    } else {
                        let watch = StateWatch::start(
                            watch_client.clone(),
                            WatchOptions {
                                node,
                                ..WatchOptions::default()
                            },
                        );
                        let synced = Arc::clone(&synced);
                        keep.push(tokio::spawn(async move {
                            if watch.wait_synced(Duration::from_secs(600)).await {
                                synced.fetch_add(1, Ordering::Relaxed);
                            }
                            // Held until the task is aborted.
                            std::future::pending::<()>().await;
                            drop(watch);
                        }));
                    }
                }
                while (synced.load(Ordering::Relaxed) as usize) < count_of {
                    assert!(
                        sync_started.elapsed() < Duration::from_secs(1200),
                        "watches never synced"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let sync_time = sync_started.elapsed();
                let sync_bytes = received.load(Ordering::Relaxed) - bytes_start;
                let (_, before) = usage(apiserver);
                let bytes_before = received.load(Ordering::Relaxed);
                tokio::time::sleep(window).await;
                let (rss, after) = usage(apiserver);
                let bytes = received.load(Ordering::Relaxed) - bytes_before;
                println!(
                    "(b) {count_of:>3} {}: synced in {:.1} s, {:.1} MiB to sync; API server RSS {rss:.0} MiB, CPU {:.1} % of a core; watches receive {:.0} bytes/s",
                    if seed {
                        "seed-style namespace watches"
                    } else {
                        "node-scope watches (field selector)"
                    },
                    sync_time.as_secs_f64(),
                    mib(sync_bytes),
                    (after - before).as_secs_f64() * 100.0 / window.as_secs_f64(),
                    bytes as f64 / window.as_secs_f64(),
                );
                for task in keep {
                    task.abort();
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }

    // (c) first: the API server alone, serving every pod to a new watch (its
    // streaming initial list, up to the bookmark that ends it) as JSON and as
    // protobuf, read and dropped: the floor under the agent's first full frame.
    if cases.contains('c') {
        for round in 1..=2 {
            for (encoding, accept) in [
                ("JSON", "application/json"),
                ("protobuf", "application/vnd.kubernetes.protobuf"),
            ] {
                // A watch may end early (the API server's cache not yet at the
                // current version: an error event, then the end); a client retries.
                for attempt in 1..=3 {
                    match initial_list_alone(&admin, accept).await {
                        Ok((took, bytes)) => {
                            println!(
                                "(c) API server alone, round {round}: every pod to a new watch as {encoding} in {:.1} s ({:.0} MB)",
                                took.as_secs_f64(),
                                bytes as f64 / 1e6
                            );
                            break;
                        }
                        Err(ended) => println!(
                            "(c) API server alone, round {round}, {encoding}, attempt {attempt}: {ended}"
                        ),
                    }
                }
            }
        }
    }

    // (c) The cluster-scope agent.
    for (build, binary) in builds.iter().filter(|_| cases.contains('c')) {
        let (proxy, received) = counting_proxy(plane.port).await;
        let kubeconfig = plane.kubeconfig_via(proxy, "agent-c.kubeconfig");
        let port = free_port();
        let started = Instant::now();
        let (mut agent, lines) = spawn_agent(
            binary,
            &kubeconfig,
            port,
            dir.path(),
            &["--scope", "cluster", "--leds", "32"],
            "",
        );
        let ready = wait_ready(port, Duration::from_secs(600));
        // The first frame with every node (LED 0 is node-0000, all running: green).
        let first_frame = loop {
            let (at, line) = lines
                .recv_timeout(Duration::from_secs(600))
                .expect("a frame");
            if line.starts_with("leds: ") && line.contains("#001900") {
                break at - started;
            }
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (_, cpu_before) = usage(agent.id());
        let bytes_before = received.load(Ordering::Relaxed);
        let (eval_sum_0, eval_count_0) = histogram(port, "podlight_evaluation_seconds");
        while lines.try_recv().is_ok() {}
        tokio::time::sleep(window).await;
        let mut builds: Vec<f64> = lines
            .try_iter()
            .filter_map(|(_, line)| {
                let rest = line.split("build_ms=").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .collect();
        builds.sort_by(f64::total_cmp);
        let (rss, cpu_after) = usage(agent.id());
        let bytes = received.load(Ordering::Relaxed) - bytes_before;
        let (eval_sum, eval_count) = histogram(port, "podlight_evaluation_seconds");
        let evaluations = eval_count - eval_count_0;
        if !builds.is_empty() {
            println!(
                "(c) {build}: cluster snapshots built in the window: {}, median {:.1} ms, max {:.1} ms",
                builds.len(),
                builds[builds.len() / 2],
                builds[builds.len() - 1]
            );
        }
        println!(
            "(c) {build}: cluster agent, {nodes} nodes / {total} pods: ready in {:.1} s, first full frame after {:.1} s; RSS {rss:.0} MiB; CPU {:.1} % of a core under churn; {:.0} bytes/s received; {evaluations:.0} evaluations in the window, mean {:.2} ms",
            ready.as_secs_f64(),
            first_frame.as_secs_f64(),
            (cpu_after - cpu_before).as_secs_f64() * 100.0 / window.as_secs_f64(),
            bytes as f64 / window.as_secs_f64(),
            if evaluations > 0.0 {
                (eval_sum - eval_sum_0) * 1000.0 / evaluations
            } else {
                0.0
            },
        );
        // Status change → frame: node-0000's first pod fails and recovers, LED 0 follows.
        let mut latencies = Vec::new();
        for round in 0..10 {
            let (state, colour) = if round % 2 == 0 {
                ("crashloop", "#320000")
            } else {
                ("running", "#001900")
            };
            while lines.try_recv().is_ok() {}
            let written = Instant::now();
            pods.patch_status(
                &pod_name(0, 0),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status_for(state)})),
            )
            .await
            .expect("patch");
            let accepted = Instant::now();
            loop {
                let (at, line) = lines
                    .recv_timeout(Duration::from_secs(60))
                    .expect("a frame for the change");
                let first_led = line
                    .split('#')
                    .nth(1)
                    .map(|hex| format!("#{}", &hex[..6.min(hex.len())]));
                if line.starts_with("leds: ") && first_led.as_deref() == Some(colour) {
                    latencies.push((at.saturating_duration_since(accepted), accepted - written));
                    break;
                }
            }
        }
        let mut frame: Vec<Duration> = latencies.iter().map(|l| l.0).collect();
        frame.sort();
        println!(
            "(c) {build}: status change accepted → new frame: median {:.0} ms, max {:.0} ms over {} changes (the write itself: median {:.0} ms)",
            frame[frame.len() / 2].as_secs_f64() * 1000.0,
            frame[frame.len() - 1].as_secs_f64() * 1000.0,
            frame.len(),
            {
                let mut w: Vec<Duration> = latencies.iter().map(|l| l.1).collect();
                w.sort();
                w[w.len() / 2].as_secs_f64() * 1000.0
            }
        );
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", agent.id())).unwrap_or_default();
        let peak = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?");
        let (rss_end, _) = usage(agent.id());
        let (_, metrics) = get(port, "/metrics").unwrap_or_default();
        let lists: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("podlight_watch_lists_total{"))
            .collect();
        println!(
            "(c) {build}: RSS at the end {rss_end:.0} MiB, {peak}; lists: {}",
            if lists.is_empty() {
                "not reported".to_string()
            } else {
                lists.join(", ")
            }
        );
        let _ = agent.kill();
        let _ = agent.wait();
    }
    stop.store(true, Ordering::Relaxed);
    let (rss, _) = usage(apiserver);
    println!(
        "end: API server RSS {rss:.0} MiB; {} churn writes",
        writes.load(Ordering::Relaxed)
    );
    let _ = kwok.kill();
    let _ = kwok.wait();
}
